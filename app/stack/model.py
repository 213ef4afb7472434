"""The compose model of a stack, as Compose itself resolves it (never parsed by hand).

Why: include:, extends, anchors, interpolation and profiles have subtle rules; only the real
`docker compose config --format json` gets them right. We read its JSON into small frozen records.

API:
- ``load_model(stack, refresh=False) -> ComposeModel``: cached per stack settings; reloaded when
  any compose/.env file in the stack folder (two levels deep) changes its mtime or size.
- ``model_from_json(active, every=None) -> ComposeModel``: build from config JSON (``every`` is the
  config with all profiles; services only there are "inactive").
- ``ComposeModel``: ``project``, ``services`` (name -> Service, active and inactive, in file order),
  ``service_names()`` (active only), ``all_service_names()``, ``inactive_names()``,
  ``get(name)``, ``require(name)`` (InvalidName/404 for anything not in the model: the check that
  keeps hostile names off command lines), ``profiles`` (every profile named anywhere),
  ``volumes`` (named volumes Compose would delete with ``down -v``: name -> real name).
- ``Service``: name, image, container_name, profiles, depends_on (Dependency: service, condition,
  required), has_healthcheck, ports (Port: host_ip, host_port, container_port, protocol), restart,
  cpus, memory (bytes), labels, environment, replicas, active, group, one_shot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import InvalidName
from app.stack import Stack

GROUP_LABEL = "stackpilot.group"
_WATCHED_SUFFIXES = (".yml", ".yaml", ".env", ".json")


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: str  # "" when Compose picks an ephemeral port; may be a range "8000-8010"
    container_port: str
    protocol: str = "tcp"

    @property
    def linkable(self) -> bool:
        """A browser can open it: TCP, a single fixed host port."""
        return self.protocol == "tcp" and self.host_port.isascii() and self.host_port.isdigit()

    @property
    def label(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip and self.host_ip not in ("0.0.0.0", "::") else ""
        published = f"{host}{self.host_port}" if self.host_port else "(any)"
        proto = "" if self.protocol == "tcp" else f"/{self.protocol}"
        return f"{published}→{self.container_port}{proto}"


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"
    required: bool = True


@dataclass(frozen=True)
class Service:
    name: str
    image: str = ""
    container_name: str = ""
    profiles: tuple[str, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    has_healthcheck: bool = False
    ports: tuple[Port, ...] = ()
    restart: str = "no"
    cpus: float | None = None
    memory: int | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    environment: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    replicas: int = 1
    active: bool = True
    one_shot: bool = False  # something waits for it to complete successfully

    @property
    def group(self) -> str:
        """The label stackpilot.group, else the first profile, else "" (the core group)."""
        return self.labels.get(GROUP_LABEL) or (self.profiles[0] if self.profiles else "")


@dataclass(frozen=True)
class ComposeModel:
    project: str
    services: dict[str, Service]
    profiles: tuple[str, ...] = ()
    volumes: dict[str, str] = field(default_factory=dict)

    def service_names(self) -> list[str]:
        """Services of the active profiles, in file order."""
        return [s.name for s in self.services.values() if s.active]

    def all_service_names(self) -> list[str]:
        return list(self.services)

    def inactive_names(self) -> list[str]:
        return [s.name for s in self.services.values() if not s.active]

    def active_services(self) -> Iterator[Service]:
        return (s for s in self.services.values() if s.active)

    def get(self, name: str) -> Service | None:
        return self.services.get(name) if isinstance(name, str) else None

    def require(self, name: str, active: bool = False) -> Service:
        """The service called name, or InvalidName (404); with active=True it must be enabled."""
        service = self.get(name)
        if service is None:
            raise InvalidName("There is no service by that name in this stack.")
        if active and not service.active:
            raise InvalidName(f"{service.name} is only in a profile that is not active.")
        return service


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _ports(raw: list) -> tuple[Port, ...]:
    out = []
    for p in raw or []:
        if isinstance(p, dict):
            out.append(Port(host_ip=str(p.get("host_ip") or ""), host_port=str(p.get("published") or ""),
                            container_port=str(p.get("target") or ""),
                            protocol=str(p.get("protocol") or "tcp")))
    return tuple(out)


def _depends(raw: dict | list | None) -> tuple[Dependency, ...]:
    if isinstance(raw, list):
        return tuple(Dependency(str(n)) for n in raw)
    return tuple(
        Dependency(str(name), str((spec or {}).get("condition") or "service_started"),
                   bool((spec or {}).get("required", True)))
        for name, spec in (raw or {}).items()
    )


def _labels(raw: dict | list | None) -> dict[str, str]:
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in (raw or {}).items()}


def _service(name: str, spec: dict, active: bool, one_shot: bool) -> Service:
    limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    health = spec.get("healthcheck") or {}
    replicas = _int((spec.get("deploy") or {}).get("replicas")) or _int(spec.get("scale")) or 1
    return Service(
        name=name,
        image=str(spec.get("image") or ""),
        container_name=str(spec.get("container_name") or ""),
        profiles=tuple(spec.get("profiles") or ()),
        depends_on=_depends(spec.get("depends_on")),
        has_healthcheck=bool(health) and not health.get("disable", False),
        ports=_ports(spec.get("ports")),
        restart=str(spec.get("restart") or "no"),
        cpus=_float(limits.get("cpus")) or _float(spec.get("cpus")),
        memory=_int(limits.get("memory")) or _int(spec.get("mem_limit")),
        labels=_labels(spec.get("labels")),
        environment={str(k): "" if v is None else str(v) for k, v in (spec.get("environment") or {}).items()},
        replicas=replicas,
        active=active,
        one_shot=one_shot,
    )


def model_from_json(active: dict, every: dict | None = None) -> ComposeModel:
    """The model from config JSON of the active profiles (and of all profiles, if given)."""
    every = every or active
    active_names = set(active.get("services") or {})
    specs = dict(every.get("services") or {})
    for name, spec in (active.get("services") or {}).items():
        specs.setdefault(name, spec)
    waited_on = {
        dep
        for spec in specs.values()
        if isinstance(spec.get("depends_on"), dict)
        for dep, cond in spec["depends_on"].items()
        if (cond or {}).get("condition") == "service_completed_successfully"
    }
    services = {
        name: _service(name, spec, name in active_names, name in waited_on) for name, spec in specs.items()
    }
    profiles = sorted({p for s in services.values() for p in s.profiles})
    project = str(active.get("name") or "")
    volumes = {}
    for key, spec in (active.get("volumes") or {}).items():
        spec = spec or {}
        if not spec.get("external"):
            volumes[key] = str(spec.get("name") or f"{project}_{key}")
    return ComposeModel(project=project, services=services, profiles=tuple(profiles), volumes=volumes)


# -- the cache ------------------------------------------------------------------------------------
_cache: dict[tuple, tuple[tuple, ComposeModel]] = {}
_cache_lock = threading.Lock()


def fingerprint(stack: Stack) -> tuple:
    """mtime and size of every compose-ish file in the stack folder (two levels): cheap to take."""
    marks = []
    root = stack.directory
    try:
        for depth_dir in [root, *(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]:
            for entry in os.scandir(depth_dir):
                if entry.is_file() and (entry.name.endswith(_WATCHED_SUFFIXES) or entry.name == ".env"):
                    st = entry.stat()
                    marks.append((entry.path, st.st_mtime_ns, st.st_size))
    except OSError:
        pass
    for name in stack.files:  # named files may live anywhere below the folder
        try:
            st = (root / name).stat()
            marks.append((str(root / name), st.st_mtime_ns, st.st_size))
        except OSError:
            marks.append((name, 0, 0))
    return tuple(sorted(marks))


def load_model(stack: Stack, refresh: bool = False) -> ComposeModel:
    """The stack's model, from the cache unless a compose/.env file changed (or refresh)."""
    from app import compose

    key = (str(stack.directory), stack.project, stack.files, stack.profiles)
    mark = fingerprint(stack)
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit[0] == mark and not refresh:
        return hit[1]
    active = compose.config_json(stack)
    every = compose.config_json(stack, all_profiles=True)
    model = model_from_json(active, every)
    with _cache_lock:
        _cache[key] = (mark, model)
    return model


def forget(stack: Stack | None = None) -> None:
    """Drop cached models (all, or those of one folder) after settings change."""
    with _cache_lock:
        for key in list(_cache):
            if stack is None or key[0] == str(stack.directory):
                _cache.pop(key, None)


def is_compose_path(path: Path) -> bool:
    return path.name.endswith(_WATCHED_SUFFIXES) or path.name == ".env"
