"""The compose model of a stack, as Compose itself resolves it (never parsed by hand).

Why: include:, extends, anchors, interpolation and profiles have subtle rules; only the real
`docker compose config --format json` gets them right. We read its JSON into small frozen records.

API:
- ``load_model(runner, refresh=False) -> ComposeModel``: cached per stack settings; reloaded when
  any compose/.env file in the stack folder (two levels deep) changes its mtime or size.
- ``model_from_json(active, every=None) -> ComposeModel``: build from config JSON (``every`` is the
  config with all profiles; services only there are "inactive").
- ``ComposeModel``: ``project``, ``services`` (name -> Service, active and inactive, in file order),
  ``service_names()`` (active only), ``all_service_names()``, ``inactive_names()``,
  ``get(name)``, ``require(name)`` (InvalidName/404 for anything not in the model: the check that
  keeps hostile names off command lines), ``profiles`` (every profile named anywhere),
  ``volumes`` (named volumes Compose would delete with ``down -v``: name -> real name).
- ``profile_options(model) -> list[ProfileOption]``: every profile in the order Compose lists them
  (`config --profiles`: sorted), with the services each one adds and the profiles it cannot be
  combined with (they start a service under the same ``container_name``).
- ``check_profiles(options, chosen)``: InvalidInput naming the clash when two exclusive profiles
  are chosen together, or a profile no file names.
- ``model_from_files(directory, files)``: a rough model read from the YAML itself (services,
  profiles, container names; no interpolation), for when Compose cannot answer yet (no `.env`, a
  file a recipe fetches at launch): enough to offer profiles, never to run anything.
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
from typing import TYPE_CHECKING

import yaml

from app.errors import InvalidInput
from app.errors import InvalidName
from app.stack import Stack

if TYPE_CHECKING:
    from app.compose import ComposeRunner

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
    build_context: str = ""  # issue 14: built here (compose `build:`), not pulled
    dockerfile: str = ""

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


@dataclass(frozen=True)
class ProfileOption:
    """One profile as a person chooses it: what it adds, what it cannot go with."""

    name: str
    services: tuple[str, ...]  # services started only because this profile is active
    exclusive: tuple[str, ...] = ()  # profiles whose services share a container_name with ours


def profile_options(model: ComposeModel) -> list[ProfileOption]:
    """Profiles in Compose's order with the services each adds and the ones it excludes."""
    names = sorted({p for s in model.services.values() for p in s.profiles})
    adds = {p: tuple(s.name for s in model.services.values() if p in s.profiles) for p in names}
    owners: dict[str, list[Service]] = {}  # container_name -> services (with profiles) taking it
    for svc in model.services.values():
        if svc.container_name and svc.profiles:
            owners.setdefault(svc.container_name, []).append(svc)
    exclusive: dict[str, set[str]] = {p: set() for p in names}
    for takers in owners.values():
        for a in takers:
            for b in takers:
                if a is b:
                    continue
                for pa in a.profiles:
                    for pb in b.profiles:
                        # a profile shared by both services would start both: not a choice
                        if pa != pb and pa not in b.profiles and pb not in a.profiles:
                            exclusive[pa].add(pb)
    return [ProfileOption(p, adds[p], tuple(sorted(exclusive[p]))) for p in names]


def check_profiles(options: list[ProfileOption], chosen: list[str]) -> None:
    """Refuse a profile no compose file names, or two that would start one container twice."""
    known = {o.name: o for o in options}
    for name in chosen:
        if name not in known:
            raise InvalidInput(f"{name!r} is not a profile of these compose files.")
    for i, name in enumerate(chosen):
        for other in chosen[i + 1 :]:
            if other in known[name].exclusive:
                raise InvalidInput(
                    f"Profiles {name} and {other} cannot run together: they start a service under the "
                    "same container name. Choose one of them."
                )


def exclusive_groups(options: list[ProfileOption]) -> list[tuple[str, ...]]:
    """Sets of mutually exclusive profiles, each offered as a choice among themselves."""
    groups: list[set[str]] = []
    for opt in options:
        if not opt.exclusive:
            continue
        members = {opt.name, *opt.exclusive}
        for g in groups:
            if g & members:
                g |= members
                break
        else:
            groups.append(members)
    order = [o.name for o in options]
    return [tuple(sorted(g, key=order.index)) for g in groups]


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
            out.append(
                Port(
                    host_ip=str(p.get("host_ip") or ""),
                    host_port=str(p.get("published") or ""),
                    container_port=str(p.get("target") or ""),
                    protocol=str(p.get("protocol") or "tcp"),
                )
            )
    return tuple(out)


def _depends(raw: dict | list | None) -> tuple[Dependency, ...]:
    if isinstance(raw, list):
        return tuple(Dependency(str(n)) for n in raw)
    return tuple(
        Dependency(
            str(name), str((spec or {}).get("condition") or "service_started"), bool((spec or {}).get("required", True))
        )
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
        build_context=str((spec.get("build") or {}).get("context") or ""),
        dockerfile=str((spec.get("build") or {}).get("dockerfile") or ""),
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
    services = {name: _service(name, spec, name in active_names, name in waited_on) for name, spec in specs.items()}
    profiles = sorted({p for s in services.values() for p in s.profiles})
    project = str(active.get("name") or "")
    volumes = {}
    for key, spec in (active.get("volumes") or {}).items():
        spec = spec or {}
        if not spec.get("external"):
            volumes[key] = str(spec.get("name") or f"{project}_{key}")
    return ComposeModel(project=project, services=services, profiles=tuple(profiles), volumes=volumes)


class _TagLoader(yaml.SafeLoader):
    """SafeLoader that reads Compose's own tags (`!reset`, `!override`) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagLoader.add_multi_constructor("!", _any_tag)


def model_from_files(directory: Path, files: tuple[str, ...] | list[str]) -> ComposeModel:
    """Services, profiles and container names straight from the YAML (include: followed, later
    files merged over earlier ones); values stay uninterpolated."""
    services: dict[str, dict] = {}
    queue = [Path(directory) / f for f in files]
    seen: set[Path] = set()
    while queue and len(seen) < 64:
        path = queue.pop(0).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            doc = yaml.load(path.read_text(encoding="utf-8", errors="replace"), Loader=_TagLoader) or {}
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(doc, dict):
            continue
        for inc in doc.get("include") or []:
            target = inc if isinstance(inc, str) else (inc or {}).get("path") if isinstance(inc, dict) else None
            for one in target if isinstance(target, list) else [target]:
                if isinstance(one, str) and "$" not in one:
                    queue.append(path.parent / one)
        for name, spec in (doc.get("services") or {}).items():
            if isinstance(spec, dict):
                merged = services.setdefault(str(name), {})
                merged.update({k: v for k, v in spec.items() if k in ("profiles", "container_name", "image")})
    config = {"services": services}
    active = {"services": {n: s for n, s in services.items() if not s.get("profiles")}}
    return model_from_json(active, config)


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


def load_model(runner: ComposeRunner, refresh: bool = False) -> ComposeModel:
    """The runner's stack's model, from the cache unless a compose/.env file changed (or refresh)."""
    stack = runner.stack
    key = (str(stack.directory), stack.project, stack.files, stack.profiles)
    mark = fingerprint(stack)
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit[0] == mark and not refresh:
        return hit[1]
    active = runner.config_json()
    every = runner.config_json(all_profiles=True)
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
