"""/metrics in Prometheus' text exposition format (version 0.0.4), written by hand: a dozen families
do not need a dependency. Off unless enabled: STACKPILOT_METRICS=open serves everyone, otherwise
a request needs a valid API token (`Authorization: Bearer`, any role) and sees the stacks its owner
may see; without either the path is 404, as if it did not exist.

Families: per service (from the engine's containers, no Compose process): state, health, restarts,
CPU and memory (from the stats sampler, local engine); Compose runs by action and result (from
the audit, so they survive restarts); open log sockets and terminals; HTTP request durations by
route (a histogram kept in memory since start).
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import abort
from flask import current_app
from flask import g
from flask import request

from app import tokens
from app.engine import containers as engine_containers
from app.errors import StackpilotError
from app.web.context import engines
from app.web.context import may_see
from app.web.context import registry
from app.web.context import stack_of
from app.web.context import store
from app.web.security import client_address
from app.web.security import public

bp = Blueprint("metrics", __name__)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_ACTIONS = ("stack.%", "service.%", "group.%")


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""


class Durations:
    """Request durations per route (the URL rule, never the raw path: bounded label values)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], list] = {}  # (method, route) -> [bucket counts, count, sum]

    def observe(self, method: str, route: str, seconds: float) -> None:
        i = bisect_left(BUCKETS, seconds)
        with self._lock:
            entry = self._data.setdefault((method, route), [[0] * (len(BUCKETS) + 1), 0, 0.0])
            entry[0][i] += 1
            entry[1] += 1
            entry[2] += seconds

    def lines(self) -> list[str]:
        out = [
            "# HELP stackpilot_http_request_duration_seconds Time to answer a request, by route.",
            "# TYPE stackpilot_http_request_duration_seconds histogram",
        ]
        with self._lock:
            items = sorted((k, [list(v[0]), v[1], v[2]]) for k, v in self._data.items())
        for (method, route), (counts, count, total) in items:
            running = 0
            for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                running += n
                out.append(
                    f"stackpilot_http_request_duration_seconds_bucket"
                    f"{_labels(method=method, route=route, le=str(bound))} {running}"
                )
            out.append(f"stackpilot_http_request_duration_seconds_count{_labels(method=method, route=route)} {count}")
            out.append(f"stackpilot_http_request_duration_seconds_sum{_labels(method=method, route=route)} {total:.6f}")
        return out


def _family(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(
            f"{name}{_labels(**labels)} {value:g}" if isinstance(value, float) else f"{name}{_labels(**labels)} {value}"
        )


def _allowed() -> bool:
    """Open by setting, or a valid token (whose owner's stacks are shown)."""
    if current_app.config.get("METRICS") == "open" or os.environ.get("STACKPILOT_METRICS") == "open":
        g.metrics_user = None
        return True
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return False
    found = tokens.authenticate(store(), current_app.secret_key, header[7:].strip(), client_address())
    if found is None:
        return False
    current_app.extensions["stackpilot.api_limits"]["token"].hit(f"token:{found[0].id}")
    g.metrics_user = found[1]
    return True


@bp.get("/metrics")
@public
def metrics():
    if not _allowed():
        abort(404)
    user = g.metrics_user
    sampler = current_app.extensions.get("stackpilot.stats")
    samples = sampler.snapshot() if sampler is not None else {}
    local = current_app.extensions["stackpilot.engine"]
    state, health, restarts, cpu, mem, up = [], [], [], [], [], []
    for entry in registry().all():
        if user is not None and not may_see(user, entry.slug):
            continue
        try:
            stack = stack_of(entry)
            engine = engines().get(entry.engine)
            found = engine_containers.project_containers(engine, stack.project)
        except StackpilotError:
            up.append(({"stack": entry.slug}, 0))
            continue
        up.append(({"stack": entry.slug}, 1))
        if sampler is not None and engine is local:
            sampler.watch(stack.project)
        for c in found:
            labels = {"stack": entry.slug, "service": c.service, "container": c.name}
            state.append(({**labels, "state": c.state}, 1))
            if c.health:
                health.append(({**labels, "health": c.health}, 1))
            restarts.append((labels, c.restart_count))
            sample = samples.get(c.id)
            if sample is not None:
                if sample.cpu_percent is not None:
                    cpu.append((labels, float(round(sample.cpu_percent, 3))))
                mem.append((labels, sample.mem_used))
    out: list[str] = []
    _family(out, "stackpilot_engine_up", "gauge", "1 when the stack's engine answered.", up)
    _family(out, "stackpilot_container_state", "gauge", "1 for the container's current state.", state)
    _family(out, "stackpilot_container_health", "gauge", "1 for the container's healthcheck result.", health)
    _family(out, "stackpilot_container_restarts", "gauge", "Restarts the engine counted for the container.", restarts)
    _family(out, "stackpilot_container_cpu_percent", "gauge", "CPU of the last sample (100 = one core).", cpu)
    _family(out, "stackpilot_container_memory_bytes", "gauge", "Memory of the last sample.", mem)
    where = " OR ".join("action LIKE ?" for _ in RUN_ACTIONS)
    rows = store().select(
        f"SELECT action, result, COUNT(*) AS n FROM audit WHERE ({where}) "
        "AND result NOT LIKE 'asked%' GROUP BY action, result ORDER BY action, result",
        RUN_ACTIONS,
    )
    runs = [({"action": r["action"], "result": r["result"].split(":")[0].split(" (")[0]}, r["n"]) for r in rows]
    _family(out, "stackpilot_compose_runs_total", "counter", "Compose actions by action and result.", runs)
    shares = current_app.extensions["stackpilot.shares"]
    _family(
        out,
        "stackpilot_open_streams",
        "gauge",
        "Open log sockets and terminals.",
        [({"kind": "logs"}, shares.held("logs")), ({"kind": "terminal"}, shares.held("terminal"))],
    )
    out += current_app.extensions["stackpilot.durations"].lines()
    response = Response("\n".join(out) + "\n")
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response


def init_app(app: Flask) -> None:
    durations = app.extensions["stackpilot.durations"] = Durations()

    @app.before_request
    def _started() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _finished(response):
        started = g.get("request_started")
        if started is not None and request.url_rule is not None and not request.url_rule.websocket:
            durations.observe(request.method, request.url_rule.rule, time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
