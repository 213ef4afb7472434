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
- ``own_project(engine, override="") -> OwnProject | None``: the compose project our container
  belongs to, as Compose labelled it: project name, service, working dir and the config files it
  was started with (``com.docker.compose.project.config_files``), so a Stackpilot installed in a
  stack defaults to that very project and files (issue 13, "the project from the inside").
"""

from __future__ import annotations

import functools
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from app.engine import Engine
from app.errors import NotFound

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"


@dataclass(frozen=True)
class OwnProject:
    """The compose project of Stackpilot's own container, from its labels."""

    project: str
    service: str
    working_dir: str
    config_files: tuple[str, ...]  # absolute paths, as Compose wrote them

    def files_in(self, directory: Path) -> tuple[str, ...]:
        """The config files relative to directory (those outside it are left out)."""
        out = []
        root = str(directory).rstrip("/") + "/"
        for f in self.config_files:
            if f.startswith(root):
                out.append(f[len(root) :])
        return tuple(out)


_MOUNT_RE = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)")

# container id -> its compose labels; labels of a container never change.
_labels: dict[tuple[str | None, str], dict[str, str] | None] = {}
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


def _container_labels(engine: Engine, container_id: str) -> dict[str, str] | None:
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
        found = {k: str(v) for k, v in labels.items() if k.startswith("com.docker.compose.")}
    with _labels_lock:
        _labels[key] = found
    return found


def own_service(engine: Engine, project: str, override: str = "") -> str | None:
    """Our compose service in `project`, or None when we are not one of its containers."""
    container_id = own_container_id(override)
    if container_id is None:
        return None
    labels = _container_labels(engine, container_id)
    if labels is None or labels.get(PROJECT_LABEL) != project or not labels.get(SERVICE_LABEL):
        return None
    return labels[SERVICE_LABEL]


def own_project(engine: Engine, override: str = "") -> OwnProject | None:
    """Our container's compose project (labels), or None outside a compose project."""
    container_id = own_container_id(override)
    if container_id is None:
        return None
    labels = _container_labels(engine, container_id)
    if not labels or not labels.get(PROJECT_LABEL):
        return None
    files = tuple(f for f in (labels.get(CONFIG_FILES_LABEL) or "").split(",") if f)
    return OwnProject(labels[PROJECT_LABEL], labels.get(SERVICE_LABEL, ""), labels.get(WORKING_DIR_LABEL, ""), files)
