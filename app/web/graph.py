"""The dependency graph of the stack's services, drawn as server-rendered SVG."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("graph", __name__, url_prefix="/graph")


@bp.get("/")
def index():
    return render_template("graph/page.html")
