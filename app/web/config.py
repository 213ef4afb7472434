"""The .env editor: validation against .env.example, secrets, backups and restore."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("config", __name__, url_prefix="/config")


@bp.get("/")
def index():
    return render_template("config/page.html")
