"""Graph labels never overlap (each other or a node) and the drawing stays within its size, on
30- and 60-service fixtures, including the fan-out of one database to everything."""

from __future__ import annotations

import random

import pytest

from app.stack.graph import NODE_H
from app.stack.graph import NODE_W
from app.stack.graph import layout
from app.stack.graph import overlap
from app.stack.model import model_from_json
from app.stack.services import build_rows

CONDITIONS = ["service_started", "service_healthy", "service_completed_successfully"]


def fixture(count: int, seed: int, hub: bool) -> dict:
    rnd = random.Random(seed)
    services = {}
    for i in range(count):
        deps = {}
        if hub and i > 1:  # everything waits for db healthy: many labels meet at one node
            deps["s00"] = {"condition": "service_healthy"}
        if i > 3:
            for d in rnd.sample(range(1, i), k=rnd.randint(0, 3)):
                deps[f"s{d:02d}"] = {"condition": rnd.choice(CONDITIONS)}
        services[f"s{i:02d}"] = {"image": "x", "depends_on": deps}
    return {"name": "big", "services": services}


@pytest.mark.parametrize(("count", "seed", "hub"), [(30, 7, False), (30, 3, True), (60, 11, False), (60, 5, True)])
def test_no_two_label_boxes_intersect(count, seed, hub):
    model = model_from_json(fixture(count, seed, hub))
    drawing = layout(model, build_rows(model, None))
    assert len(drawing.nodes) == count
    nodes = [(n.x, n.y, NODE_W, NODE_H) for n in drawing.nodes]
    boxes = [e.label_box for e in drawing.edges if e.label and e.placed]
    wanted = [e for e in drawing.edges if e.label]
    assert boxes and len(boxes) >= len(wanted) // 3, (len(boxes), len(wanted))  # most conditions still in words
    for i, box in enumerate(boxes):
        assert 0 <= box[0] and box[0] + box[2] <= drawing.width and 0 <= box[1] <= drawing.height
        assert not any(overlap(box, node) for node in nodes), box
        for other in boxes[i + 1 :]:
            assert not overlap(box, other), (box, other)
    for e in drawing.edges:
        assert e.placed or e.label  # only a labelled edge can lose its label
