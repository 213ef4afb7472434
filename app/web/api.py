"""Machine-facing endpoints: health for probes, and the WebSocket echo used to check the bridge."""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import jsonify

from app import wsbridge
from app.web import engine
from app.web import sock
from app.web.security import public
from app.web.security import require_role

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/health")
@public
def health():
    """Always 200 while the process serves; the engine's state is reported, not fatal."""
    reachable, detail = engine().status()
    return jsonify(
        status="ok",
        version=current_app.config["VERSION"],
        docker="reachable" if reachable else f"unreachable: {detail}",
        docker_version=detail if reachable else None,
        websockets=len(wsbridge.OPEN_SOCKETS),
    )


@sock.route("/ws/echo", bp=bp)
@require_role("admin")
def echo(ws):
    """Echoes text frames back: a cheap end-to-end check of the WebSocket bridge (admins only:
    each open socket holds a server thread)."""
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)
