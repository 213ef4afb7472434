"""Layout of the depends_on graph: layered left to right by dependency depth, for a server-drawn SVG.

Why our own layout: the graph is a DAG of at most a few dozen services; a longest-path layering
plus a barycentre ordering pass reads well and needs no JavaScript or graph library.

API:
- ``layout(model, rows) -> Layout``: nodes of the active services at (x, y), edges from each
  dependency to its dependent (cubic path, label for service_healthy/service_completed_successfully),
  width/height of the drawing. Cycles (invalid in Compose anyway) cannot loop forever.
- Labels never overlap a node or another label: each takes the first free spot along its edge, and
  is left out (``Edge.placed`` False) when there is none; the edge's style (legend) still says it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

from app.stack.model import ComposeModel
from app.stack.services import Row

NODE_W = 200
NODE_H = 80  # four lines: name, state, blocked/health why, drift
COL_GAP = 110
ROW_GAP = 18
PAD = 16
EDGE_LABELS = {"service_healthy": "healthy", "service_completed_successfully": "completed"}
LABEL_CHAR_W = 6.6  # 11px system-ui, generous: the box must cover the drawn text
LABEL_H = 15
LABEL_PAD = 3
LABEL_STOPS = (0.5, 0.35, 0.65, 0.22, 0.78, 0.12, 0.88)  # where along the edge a label may sit, best first


@dataclass(frozen=True)
class Node:
    name: str
    x: int
    y: int
    row: Row
    depth: int

    @property
    def label(self) -> str:
        return self.name if len(self.name) <= 22 else self.name[:21] + "…"  # 13px mono in a 200px box

    @property
    def notes(self) -> list[tuple[str, str]]:
        """(css class, short text) lines under the state: why it waits, why it is unhealthy, drift."""
        out = []
        if self.row.blocked_by:
            out.append(("node-blocked", _short("blocked by " + ", ".join(self.row.blocked_by))))
        if self.row.health_why:
            first = (self.row.health_output.splitlines() or [""])[0]
            code = f"exit {self.row.health_exit}" if self.row.health_exit is not None else "check"
            out.append(("node-why", _short(f"{code}: {first}" if first else code)))
        if self.row.drift:
            out.append(("node-drift", _short("⟳ older " + " + ".join(self.row.drift))))
        return out[:2]


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    condition: str
    path: str
    label: str
    label_x: float
    label_y: float
    unmet: bool  # the dependency does not satisfy the condition now
    placed: bool = True  # False: no free spot for the label; the edge's style and title say the condition

    @property
    def label_box(self) -> tuple[float, float, float, float] | None:
        """(x, y, width, height) the label's text covers, None when it has none."""
        if not self.label:
            return None
        w = len(self.label) * LABEL_CHAR_W + 2 * LABEL_PAD
        return (self.label_x - w / 2, self.label_y - LABEL_H + 3, w, LABEL_H)


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    nodes: list[Node]
    edges: list[Edge]
    layers: int


def depths(model: ComposeModel) -> dict[str, int]:
    """Longest dependency chain below each active service (0 = depends on nothing active)."""
    active = {s.name: s for s in model.active_services()}
    memo: dict[str, int] = {}

    def depth(name: str, trail: frozenset[str]) -> int:
        if name in memo:
            return memo[name]
        deps = [d.service for d in active[name].depends_on if d.service in active and d.service not in trail]
        value = 1 + max((depth(d, trail | {d}) for d in deps), default=-1)
        memo[name] = value
        return value

    for name in active:
        depth(name, frozenset({name}))
    return memo


def _bezier(p0, p1, p2, p3, t: float) -> tuple[float, float]:
    u = 1 - t
    x = u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0]
    y = u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1]
    return x, y


def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _place_label(edge: Edge, curve, taken: list[tuple[float, float, float, float]]) -> Edge:
    """Put the label on the first free spot along its edge (clear of nodes and of labels placed
    before); with none free the label is left out (placed=False): never two labels on each other."""
    for t in LABEL_STOPS:
        x, y = _bezier(*curve, t)
        moved = replace(edge, label_x=round(x, 1), label_y=round(y - 4, 1))
        box = moved.label_box
        if not any(overlap(box, other) for other in taken):
            taken.append(box)
            return moved
    return replace(edge, placed=False)


def layout(model: ComposeModel, rows: list[Row]) -> Layout:
    """Place active services in columns by depth; order each column by its dependencies' places."""
    by_name = {r.name: r for r in rows}
    depth = depths(model)
    columns: dict[int, list[str]] = {}
    for name in sorted(depth):
        columns.setdefault(depth[name], []).append(name)
    tallest = max((len(c) for c in columns.values()), default=0)
    position: dict[str, float] = {}  # vertical slot, columns centred on each other
    dependents: dict[str, list[str]] = {}
    for name in depth:
        for dep in model.services[name].depends_on:
            if dep.service in depth:
                dependents.setdefault(dep.service, []).append(name)

    def place(names: list[str]) -> None:
        for i, name in enumerate(names):
            position[name] = (tallest - len(names)) / 2 + i

    def sweep(order: list[int], neighbours) -> None:
        for d in order:

            def centre(name: str) -> tuple[float, float, str]:
                near = [position[n] for n in neighbours(name) if n in position]
                here = position.get(name, 0.0)
                return (sum(near) / len(near) if near else here, here, name)

            columns[d].sort(key=centre)
            place(columns[d])

    for d in sorted(columns):
        place(columns[d])
    # Barycentre sweeps: forward by dependencies, back by dependents, forward again.
    ahead = sorted(columns)
    sweep(ahead[1:], lambda n: [x.service for x in model.services[n].depends_on])
    sweep(list(reversed(ahead))[1:], lambda n: dependents.get(n, []))
    sweep(ahead[1:], lambda n: [x.service for x in model.services[n].depends_on])
    height = PAD * 2 + max(0, tallest * (NODE_H + ROW_GAP) - ROW_GAP)
    width = PAD * 2 + max(0, len(columns) * (NODE_W + COL_GAP) - COL_GAP)
    nodes: dict[str, Node] = {}
    for d, names in columns.items():
        offset = (tallest - len(names)) * (NODE_H + ROW_GAP) / 2
        for i, name in enumerate(names):
            nodes[name] = Node(
                name=name,
                x=PAD + d * (NODE_W + COL_GAP),
                y=int(PAD + offset + i * (NODE_H + ROW_GAP)),
                row=by_name[name],
                depth=d,
            )
    edges = []
    taken: list[tuple[float, float, float, float]] = [(n.x, n.y, NODE_W, NODE_H) for n in nodes.values()]
    for name, node in nodes.items():
        for dep in model.services[name].depends_on:
            src = nodes.get(dep.service)
            if src is None:
                continue
            p0 = (src.x + NODE_W, src.y + NODE_H / 2)
            p3 = (node.x, node.y + NODE_H / 2)
            bend = max(40.0, (p3[0] - p0[0]) / 2)
            p1, p2 = (p0[0] + bend, p0[1]), (p3[0] - bend, p3[1])
            label = EDGE_LABELS.get(dep.condition, "")
            edge = Edge(
                source=dep.service,
                target=name,
                condition=dep.condition,
                path=f"M{p0[0]:.0f},{p0[1]:.0f} C{p1[0]:.0f},{p1[1]:.0f} {p2[0]:.0f},{p2[1]:.0f} "
                f"{p3[0]:.0f},{p3[1]:.0f}",
                label=label,
                label_x=0.0,
                label_y=0.0,
                unmet=dep.service in node.row.blocked_by,
            )
            edges.append(_place_label(edge, (p0, p1, p2, p3), taken) if label else edge)
    return Layout(
        width=max(width, NODE_W + 2 * PAD),
        height=max(height, NODE_H + 2 * PAD),
        nodes=list(nodes.values()),
        edges=edges,
        layers=len(columns),
    )
