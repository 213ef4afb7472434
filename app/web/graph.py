"""The dependency graph of the stack's services, drawn as server-rendered SVG (no script needed).

/graph is the page; /graph/svg is the same drawing alone, which the page polls so node colours
follow the live state.
"""

from __future__ import annotations

from flask import Blueprint
from flask import render_template

from app.stack.graph import NODE_H
from app.stack.graph import NODE_W
from app.stack.graph import layout
from app.web.services import snapshot

bp = Blueprint("graph", __name__, url_prefix="/graph")


def _context() -> dict:
    snap = snapshot()
    drawing = layout(snap.model, snap.rows) if snap.model is not None else None
    return {"snap": snap, "stack": snap.stack, "drawing": drawing, "node_w": NODE_W, "node_h": NODE_H}


@bp.get("/")
def index():
    return render_template("graph/page.html", **_context())


@bp.get("/svg")
def svg():
    return render_template("graph/_svg.html", **_context())
