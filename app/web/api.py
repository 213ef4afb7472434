"""Machine-facing endpoints: health for probes, and the WebSocket echo used to check the bridge."""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify

from app import wsbridge
from app.shares import ShareRefused
from app.web import engine
from app.web import sock
from app.web.security import public
from app.web.security import require_role

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/health")
@public
def health():
    """Always 200 while the process serves; the engine's state is reported, not fatal.

    Anonymous callers (probes) learn whether the engine answers, not which version it runs."""
    reachable, detail = engine().status()
    body = {"status": "ok", "version": current_app.config["VERSION"],
            "docker": "reachable" if reachable else f"unreachable: {detail}",
            "websockets": len(wsbridge.OPEN_SOCKETS)}
    if g.get("user") is not None:
        body["docker_version"] = detail if reachable else None
    return jsonify(body)


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
