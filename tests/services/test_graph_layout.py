"""The graph layout stays readable for a 30-service stack: columns by depth, no overlaps."""

from __future__ import annotations

import random

from app.stack.graph import NODE_H
from app.stack.graph import NODE_W
from app.stack.graph import layout
from app.stack.model import model_from_json
from app.stack.services import build_rows


def thirty_services() -> dict:
    rnd = random.Random(7)
    services = {}
    for i in range(30):
        deps = {}
        if i > 3:
            for d in rnd.sample(range(i), k=rnd.randint(0, 3)):
                deps[f"s{d:02d}"] = {
                    "condition": rnd.choice(["service_started", "service_healthy", "service_completed_successfully"])
                }
        services[f"s{i:02d}"] = {"image": "x", "depends_on": deps}
    return {"name": "big", "services": services}


def test_thirty_services_layout_is_readable():
    model = model_from_json(thirty_services())
    drawing = layout(model, build_rows(model, None))
    assert len(drawing.nodes) == 30
    by_name = {n.name: n for n in drawing.nodes}
    for edge in drawing.edges:  # every edge runs left to right: dependencies sit in earlier columns
        assert by_name[edge.source].depth < by_name[edge.target].depth
    boxes = [(n.x, n.y) for n in drawing.nodes]
    for i, (x, y) in enumerate(boxes):
        assert 0 <= x and x + NODE_W <= drawing.width and 0 <= y and y + NODE_H <= drawing.height
        for x2, y2 in boxes[i + 1 :]:
            assert abs(x - x2) >= NODE_W or abs(y - y2) >= NODE_H  # no two nodes overlap
    assert drawing.height <= 30 * (NODE_H + 20) and drawing.layers >= 3
    labels = {e.label for e in drawing.edges}
    assert {"healthy", "completed"} <= labels and "" in labels


def test_a_dependency_cycle_cannot_hang_the_layout():
    model = model_from_json(
        {
            "name": "c",
            "services": {
                "a": {"image": "x", "depends_on": {"b": {"condition": "service_started"}}},
                "b": {"image": "x", "depends_on": {"a": {"condition": "service_started"}}},
            },
        }
    )
    assert len(layout(model, build_rows(model, None)).nodes) == 2
