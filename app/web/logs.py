"""Live logs of the stack's services, streamed over a WebSocket."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("logs", __name__, url_prefix="/logs")


@bp.get("/")
def index():
    return render_template("logs/page.html")
