"""First run: claim the admin account, then the guided setup wizard."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.web.security import public

bp = Blueprint("setup", __name__, url_prefix="/setup")


@bp.get("/")
@public
def index():
    return render_template("setup/page.html")
