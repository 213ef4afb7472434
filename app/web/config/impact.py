"""What a .env change does to the stack: the services whose resolved compose config changes, and
whether a database those services keep data for already exists. Flask-free helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from app.engine import Engine
from app.engine import volumes as engine_volumes
from app.errors import StackpilotError
from app.stack import Stack
from app.web.context import runners

log = logging.getLogger(__name__)


def config_for(stack: Stack, env_bytes: bytes | None = None) -> dict:
    """The resolved config with the stack's .env, or with `env_bytes` as its .env (a draft kept
    in a private temp file for the one Compose call)."""
    if env_bytes is None:
        return runners().for_stack(stack).config_json()
    folder = tempfile.mkdtemp(prefix="stackpilot-env-")
    path = Path(folder) / ".env"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(env_bytes)
        return runners().for_stack(stack).config_json(env_file=path)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def affected_services(before: dict, after: dict) -> list[str]:
    """Services whose resolved definition differs (new, removed or changed)."""
    a = before.get("services") or {}
    b = after.get("services") or {}
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


def services_with_data(engine: Engine, config: dict, services: Iterable[str]) -> dict[str, list[str]]:
    """For each given service, the data it already keeps: existing named volumes and non-empty
    bind-mounted folders. An engine that cannot answer yields no named volumes (folders still count)."""
    named = config.get("volumes") or {}
    found: dict[str, list[str]] = {}
    wanted: dict[str, list[str]] = {}
    for name in services:
        spec = (config.get("services") or {}).get(name) or {}
        for mount in spec.get("volumes") or ():
            if not isinstance(mount, dict):
                continue
            source = mount.get("source") or ""
            if mount.get("type") == "volume" and source:
                full = (named.get(source) or {}).get("name") or source
                wanted.setdefault(name, []).append(full)
            elif mount.get("type") == "bind" and source:
                path = Path(source)
                with contextlib.suppress(OSError):
                    if path.is_dir() and any(path.iterdir()):
                        found.setdefault(name, []).append(str(path))
    try:
        existing = engine_volumes.existing(engine, [v for vs in wanted.values() for v in vs])
    except StackpilotError as e:
        log.warning("cannot list volumes: %s", e.message)
        existing = set()
    for name, vols in wanted.items():
        for v in vols:
            if v in existing:
                found.setdefault(name, []).append(v)
    return found
