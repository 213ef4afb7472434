"""Machine-facing endpoints: health, liveness and readiness probes, the WebSocket echo checking the bridge."""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify

from app import wsbridge
from app.shares import ShareRefused
from app.web.context import stack_engine as engine
from app.web.context import store
from app.web.security import public
from app.web.security import require_role
from app.web.sockets import sock

bp = Blueprint("api", __name__, url_prefix="/api")
probe_bp = Blueprint("probes", __name__)  # /livez, /readyz: Kubernetes' and Compose's usual paths


@bp.get("/health")
@public
def health():
    """Always 200 while the process serves; the engine's state is reported ("degraded" without it), not fatal.

    Anonymous callers (probes) learn whether the engine answers, not which version it runs."""
    reachable, detail = engine().status()
    body = {
        "status": "ok" if reachable else "degraded",
        "version": current_app.config["VERSION"],
        "docker": "reachable" if reachable else f"unreachable: {detail}",
        "websockets": len(wsbridge.OPEN_SOCKETS),
    }
    if g.get("user") is not None:
        body["docker_version"] = detail if reachable else None
    return jsonify(body)


def _store_writable() -> str:
    """ "" when the store takes a write lock (a full disk or read-only mount fails here), else why not."""
    try:
        with store().transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS probe (at REAL)")
    except Exception as e:  # sqlite3.OperationalError and OSError alike: the probe reports, never raises
        return f"store not writable: {e}"
    return ""


@probe_bp.get("/livez")
@public
def livez():
    """The process answers (nothing else is checked: a dead engine must not get us restarted)."""
    return jsonify({"status": "ok"})


@probe_bp.get("/readyz")
@public
def readyz():
    """Ready to serve: the store is writable and the engine answers; 503 with the reason otherwise."""
    reasons = []
    if why := _store_writable():
        reasons.append(why)
    reachable, detail = current_app.extensions["stackpilot.engine"].status()
    if not reachable:
        reasons.append(f"engine unreachable: {detail}")
    body = {"status": "ready" if not reasons else "not ready", "reasons": reasons}
    return jsonify(body), 200 if not reasons else 503


@sock.route("/ws/echo", bp=bp)
@require_role("admin")
def echo(ws):
    """Echoes text frames back: a cheap end-to-end check of the WebSocket bridge (admins only:
    each open socket holds a server thread, counted like any stream)."""
    try:
        share = current_app.extensions["stackpilot.shares"].take("echo", g.user.username)
    except ShareRefused as e:
        ws.close(1013, e.message[:120])
        return
    with share:
        while True:
            message = ws.receive()
            if message is None:
                break
            ws.send(message)


def init_app(app) -> None:
    app.register_blueprint(probe_bp)
