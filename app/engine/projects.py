"""Every compose project an engine runs or ran, from ONE container listing (no inspections).

The home page and stack discovery need the projects' labels and state summaries, not each
container's details: `containers(all=True)` filtered by the compose project label is one call.
"""

from __future__ import annotations

from app.engine import Engine

PROJECT_LABEL = "com.docker.compose.project"


def compose_containers(engine: Engine) -> list[dict]:
    """The engine's container summaries (running or not) that belong to a compose project."""
    return engine.call(lambda c: c.api.containers(all=True, filters={"label": [PROJECT_LABEL]}), "containers")
