"""The service table: live state of every service of the stack, and actions on them."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("services", __name__)


@bp.get("/")
@bp.get("/services")
def index():
    return render_template("services/page.html")
