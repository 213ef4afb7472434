"""Stackpilot's own container, when it runs as a service of the stack it manages.

Why: the recommended install `include:`s docker/stackpilot.yml into the managed stack, so our
container is one of the project's services. Any Compose run that stops or replaces it (stack
down/restart, a recreate, an `up` that would recreate it) kills the process running Compose: the
run dies half way and the UI never comes back. Actions ask own_service() first and leave that
service alone.

API:
- ``own_container_id(override="") -> str | None``: our container's id, or None when we do not
  run in a container. Detected once per process (it never changes). ``override`` is
  Settings.self_container_id, i.e. the environment variable STACKPILOT_SELF_CONTAINER_ID: for
  tests and unusual runtimes where detection cannot see the id; it is the only way to set it.
- ``own_service(engine, project, override="") -> str | None``: the compose service name of our
  container when it carries com.docker.compose.project == project, else None (not in a
  container, the engine does not know it, or another project). Raises EngineUnavailable when the
  engine cannot be asked.
"""

from __future__ import annotations

import functools
import re
import socket
import threading
from pathlib import Path

from app.engine import Engine
from app.errors import NotFound

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

_MOUNT_RE = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)")

# container id -> (project, service) labels; labels of a container never change.
_labels: dict[tuple[str | None, str], tuple[str, str] | None] = {}
_labels_lock = threading.Lock()


@functools.cache
def _detected_id() -> str | None:
    """The engine bind-mounts /etc/hostname from /var/lib/docker/containers/<id>/, which names
    the full id even when the compose file sets a hostname; the hostname is the fallback."""
    if not (Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()):
        return None
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    if m := _MOUNT_RE.search(mountinfo):
        return m.group(1)
    return socket.gethostname()


def own_container_id(override: str = "") -> str | None:
    """Our container's id when we run in a container, else None (override: see the module doc)."""
    return override.strip() or _detected_id()


def _container_labels(engine: Engine, container_id: str) -> tuple[str, str] | None:
    key = (engine.base_url, container_id)
    with _labels_lock:
        if key in _labels:
            return _labels[key]
    try:
        data = engine.call(lambda c: c.api.inspect_container(container_id), "own container")
    except NotFound:
        found = None  # e.g. a hostname that names no container: it never will
    else:
        labels = (data.get("Config") or {}).get("Labels") or {}
        found = (labels.get(PROJECT_LABEL, ""), labels.get(SERVICE_LABEL, ""))
    with _labels_lock:
        _labels[key] = found
    return found


def own_service(engine: Engine, project: str, override: str = "") -> str | None:
    """Our compose service in `project`, or None when we are not one of its containers."""
    container_id = own_container_id(override)
    if container_id is None:
        return None
    labels = _container_labels(engine, container_id)
    if labels is None or labels[0] != project or not labels[1]:
        return None
    return labels[1]
