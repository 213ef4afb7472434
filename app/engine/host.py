"""What the setup wizard asks the engine about the machine, so the wizard itself never calls the
Docker SDK: the engine's facts (CPUs, memory, runtimes), which host ports other containers
publish, our own container's mounts, and the last lines of a container's log.

Each function raises the engine's typed errors (EngineUnavailable, NotFound), never an SDK one.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine import Engine
from app.errors import StackpilotError

PROJECT_LABEL = "com.docker.compose.project"


@dataclass(frozen=True)
class PublishedPort:
    port: int
    protocol: str
    container: str
    project: str


def info(engine: Engine) -> dict:
    """The engine's `docker info` (NCPU, MemTotal, Runtimes, ...)."""
    return engine.call(lambda c: c.info(), "engine info")


def published_ports(engine: Engine) -> list[PublishedPort]:
    """Host ports published by running containers, with the container and its compose project."""
    rows = engine.call(lambda c: c.api.containers(), "containers")
    out = []
    for row in rows:
        name = ((row.get("Names") or ["?"])[0]).lstrip("/")
        project = (row.get("Labels") or {}).get(PROJECT_LABEL, "")
        for p in row.get("Ports") or []:
            if p.get("PublicPort"):
                out.append(PublishedPort(int(p["PublicPort"]), p.get("Type") or "tcp", name, project))
    return out


def container_mounts(engine: Engine, container_id: str) -> list[dict]:
    """A container's mounts as the engine reports them (Type, Source, Destination)."""
    data = engine.call(lambda c: c.api.inspect_container(container_id), "own container")
    return data.get("Mounts") or []


def tail_logs(engine: Engine, container_id: str, lines: int) -> list[str]:
    """The last lines of a container's output; a line saying why when it cannot be read."""
    try:
        raw = engine.call(lambda c: c.api.logs(container_id, stdout=True, stderr=True, tail=lines), "logs")
    except StackpilotError as e:
        return [f"(logs unavailable: {e.message})"]
    return raw.decode("utf-8", "replace").splitlines()[-lines:]
