"""The service table (/ and /services), service and stack actions, their progress, stack settings.

Views are thin: they read a Snapshot (compose model + live containers + stats samples, see
snapshot()) and render templates/services/*; actions go through app.compose (serialised per
stack) and are audited when they finish. The graph blueprint reuses snapshot().
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from flask import Blueprint
from flask import Flask
from flask import current_app

from app.engine import containers as engine_containers
from app.engine.stats import StatsSampler
from app.errors import StackpilotError
from app.stack import Stack
from app.stack.drift import outdated
from app.stack.model import ComposeModel
from app.stack.model import load_model
from app.stack.model import model_from_json
from app.stack.services import Row
from app.stack.services import build_rows
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import stack_engine as engine

log = logging.getLogger(__name__)

bp = Blueprint("services", __name__)

LISTENERS = "stackpilot.events"  # app/web/live.py registers the engines' event listeners under it
LIST_LEASE = 15.0  # a polled table keeps its engine's event stream open this long after a request


@dataclass
class Snapshot:
    """Everything the table and the graph show, taken once per request."""

    stack: Stack | None
    model: ComposeModel | None = None
    model_error: StackpilotError | None = None
    engine_error: str = ""
    rows: list[Row] = field(default_factory=list)


def sampler() -> StatsSampler:
    """The stats sampler of this request's stack's engine."""
    return current_app.extensions["stackpilot.samplers"].get(engine())


def snapshot() -> Snapshot:
    """Model (cached), containers (one list call) and the latest samples; never raises for a
    broken compose file or a dead engine: the page shows those as banners."""
    stack = current_stack()
    if stack is None:
        return Snapshot(stack=None)
    snap = Snapshot(stack=stack)
    try:
        snap.model = load_model(runners().for_stack(stack))
    except StackpilotError as e:
        snap.model_error = e
        return _from_containers(snap)
    found = None
    images: dict[str, str] = {}
    try:
        found = engine_containers.project_containers(engine(), stack.project, *list_token(stack))
        sampler().watch(stack.project)
        images = engine_containers.image_ids(engine(), {c.image for c in found})
    except StackpilotError as e:
        snap.engine_error = e.message
    # Drift only means something for containers that exist: no Compose call for a stack that is down.
    stale = outdated(runners().for_stack(stack), found) if found else set()
    snap.rows = build_rows(snap.model, found, sampler().snapshot(), outdated=stale, image_ids=images)
    return snap


def list_token(stack: Stack) -> tuple[tuple | None, Callable[[tuple], set[str] | None] | None]:
    """A value that stays equal while nothing of the stack's containers changed, so the engine's
    list of them can be reused, and what tells which containers changed since an older value
    (app.engine.containers.project_containers); (None, None): ask the engine for all.

    Made of the engine's event stream (kept open while pages ask, see LIST_LEASE) and the stack's
    own Compose runs: events arrive asynchronously, so an action Stackpilot runs must not rely on
    them. While a run (or any action holding the stack) goes on there is no reuse, and the end of
    a run changes the value, so the first table after an action lists everything afresh."""
    listeners = current_app.extensions.get(LISTENERS)
    if listeners is None:
        return None, None
    runner = runners().for_stack(stack)
    if runner.busy():
        return None, None
    listener = listeners.get(engine())
    listener.keep(LIST_LEASE)
    seen = listener.token(stack.project)
    if seen is None:
        return None, None
    last = next(iter(runner.recent_runs(1)), None)
    token = (seen, last.id, last.finished_at) if last is not None else (seen, "", None)

    def changes(old: tuple) -> set[str] | None:
        if old[1:] != token[1:]:  # a run started or ended since: everything may have changed
            return None
        return listener.changed(stack.project, old[0], seen)

    return token, changes


def _from_containers(snap: Snapshot) -> Snapshot:
    """Files Compose cannot read: still show the project's containers (found by label), so the
    running stack and its state do not vanish exactly when something is wrong with its files."""
    try:
        found = engine_containers.project_containers(engine(), snap.stack.project)
    except StackpilotError as e:
        snap.engine_error = e.message
        return snap
    if found:
        seen = model_from_json(
            {"name": snap.stack.project, "services": {c.service: {"image": c.image} for c in found if c.service}}
        )
        snap.rows = build_rows(seen, found, sampler().snapshot())
    return snap


def init_app(app: Flask) -> None:
    """Point the Compose runner at our settings; stop Compose runs at shutdown."""
    owned = app.extensions["stackpilot.runners"]
    owned.configure(settings_of(app).compose_command, settings_of(app).docker_host)
    app.extensions.setdefault("stackpilot.shutdown", []).append(owned.shutdown)


def settings_of(app: Flask):
    return app.config["SETTINGS"]


__all__ = ["bp", "init_app", "snapshot", "Snapshot", "sampler"]

from app.web.services import actions  # noqa: E402,F401  (registers routes on bp)
from app.web.services import stack_settings  # noqa: E402,F401
from app.web.services import table  # noqa: E402,F401
