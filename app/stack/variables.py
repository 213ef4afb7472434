"""How a stack's compose files use each `.env` variable: the evidence validation and the secret
policy need besides the example file.

Read from the raw YAML of the compose files (following `include:`), because `docker compose config`
returns values already interpolated and the references are gone. Per variable: the services that
refer to it (or `env_file: .env` them all), whether `${VAR:?msg}` / `${VAR?msg}` makes Compose
refuse to start without it, and where it is used (a published port, an image, a bind source, a URL,
a typed boolean field). No Compose call, no Docker: cheap enough for every page view.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# `$$` is an escaped dollar; `${NAME...}` or `$NAME` a reference.
_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_BOOL_FIELDS = {"read_only", "privileged", "tty", "stdin_open", "init", "attachable", "external", "disable"}
_PORT_FIELDS = {"ports", "expose"}
GLOBAL = "(project)"  # pseudo-service: used outside any service (networks, volumes, name:)
MAX_FILES = 64


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml's when present: ~5x faster on big files) that accepts Compose's own tags
    (`!reset`, `!override`) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_Loader.add_multi_constructor("!", _any_tag)


@dataclass
class Ref:
    services: set[str] = field(default_factory=set)
    contexts: set[str] = field(default_factory=set)
    required: str | None = None  # the `:?` message ("" without one); None: not required


@dataclass
class Usage:
    """Variable -> how the compose files refer to it; plus which services read the whole `.env`."""

    refs: dict[str, Ref] = field(default_factory=dict)
    profiles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # service -> its profiles
    env_file_services: set[str] = field(default_factory=set)  # services with `env_file: .env`
    env_derived: dict[str, set[str]] = field(default_factory=dict)  # KEY -> keys its .env value refers to
    images: dict[str, str] = field(default_factory=dict)  # service -> its image reference as written
    read: bool = False  # at least one compose file was read

    def required(self, key: str) -> str | None:
        ref = self.refs.get(key)
        return ref.required if ref else None

    def services(self, key: str) -> set[str]:
        ref = self.refs.get(key)
        found = set(ref.services) if ref else set()
        return found | self.env_file_services

    def contexts(self, key: str) -> set[str]:
        ref = self.refs.get(key)
        return set(ref.contexts) if ref else set()

    def active_services(self, profiles: Iterable[str]) -> set[str]:
        """Services Compose starts with these profiles (no profile, or one of them; `*` = all)."""
        wanted = set(profiles)
        return {name for name, own in self.profiles.items() if not own or "*" in wanted or wanted & set(own)}

    def is_used(self, key: str, active: set[str] | None) -> bool | None:
        """True when a service Compose starts refers to key (directly, through `env_file: .env`, or
        through another `.env` value that refers to it); False when only inactive services do;
        None when the compose files never name it (unknown: an image may read it on its own)."""
        if active is None or not self.read:
            return None
        users = self._users(key, set())
        if not users:
            return None
        return bool(users & (active | {GLOBAL}))

    def _users(self, key: str, seen: set[str]) -> set[str]:
        if key in seen:
            return set()
        seen.add(key)
        users = self.services(key)
        for other, refs in self.env_derived.items():
            if key in refs:
                users |= self._users(other, seen)
        return users


def scan(
    directory: Path,
    files: Sequence[str],
    env_values: Mapping[str, str] | None = None,
    env_raw: Mapping[str, str] | None = None,
) -> Usage:
    """The usage of every variable in these compose files (relative to directory; default names
    when empty). `env_raw` (KEY -> value as written in .env) links `.env` values that refer to
    other keys, so a password used only inside a datasource URL still counts as used."""
    usage = Usage()
    directory = Path(directory)
    paths = [directory / f for f in files] if files else _default_files(directory)
    seen: set[Path] = set()
    queue = list(paths)
    while queue and len(seen) < MAX_FILES:
        path = queue.pop(0)
        with contextlib.suppress(OSError):
            path = path.resolve()
        if path in seen:
            continue
        seen.add(path)
        try:
            data = yaml.load(path.read_text(encoding="utf-8", errors="replace"), Loader=_Loader)
        except (OSError, yaml.YAMLError) as e:
            log.info("cannot read %s for variable usage: %s", path, e)
            continue
        if not isinstance(data, dict):
            continue
        usage.read = True
        for inc in data.get("include") or ():
            target = inc.get("path") if isinstance(inc, dict) else inc
            for one in target if isinstance(target, list) else [target]:
                if isinstance(one, str) and "$" not in one:
                    queue.append(path.parent / one)
        for name, spec in (data.get("services") or {}).items():
            if not isinstance(spec, dict):
                continue
            name = str(name)
            own = spec.get("profiles") or ()
            prev = usage.profiles.get(name, ())
            usage.profiles[name] = tuple(dict.fromkeys([*prev, *(str(p) for p in own if p is not None)]))
            if _reads_dotenv(spec.get("env_file"), path.parent, directory):
                usage.env_file_services.add(name)
            if isinstance(spec.get("image"), str):
                usage.images[name] = spec["image"]
            _pass_through(spec.get("environment"), name, usage)
            _walk(spec, name, (), usage)
        for section in ("name", "networks", "volumes", "secrets", "configs", "x-"):
            for key, value in data.items():
                if key == section or (section == "x-" and str(key).startswith("x-")):
                    _walk(value, GLOBAL, (str(key),), usage)
    for key, raw in (env_raw or {}).items():
        names = {m.group(1) or m.group(3) for m in _REF.finditer(raw) if m.group(0) != "$$"}
        if names:
            usage.env_derived[key] = names
    return usage


def _default_files(directory: Path) -> list[Path]:
    for name in ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"):
        if (directory / name).is_file():
            found = [directory / name]
            for over in (
                "compose.override.yaml",
                "compose.override.yml",
                "docker-compose.override.yml",
                "docker-compose.override.yaml",
            ):
                if (directory / over).is_file():
                    found.append(directory / over)
                    break
            return found
    return []


def _reads_dotenv(env_file, folder: Path, directory: Path) -> bool:
    items = env_file if isinstance(env_file, list) else [env_file] if env_file else []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else item
        if isinstance(path, str) and "$" not in path:
            with contextlib.suppress(OSError):
                if (folder / path).resolve() == (directory / ".env").resolve():
                    return True
    return False


def _pass_through(environment, service: str, usage: Usage) -> None:
    """`environment: [KEY]` or `{KEY: null}` hands the `.env` value of KEY to the container."""
    if isinstance(environment, list):
        names = [e.strip() for e in environment if isinstance(e, str) and "=" not in e]
    elif isinstance(environment, dict):
        names = [str(k) for k, v in environment.items() if v is None]
    else:
        names = []
    for key in names:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            usage.refs.setdefault(key, Ref()).services.add(service)


def _walk(node, service: str, path: tuple[str, ...], usage: Usage) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _walk(str(k), service, (*path, "<key>"), usage)
            _walk(v, service, (*path, str(k)), usage)
    elif isinstance(node, list):
        for v in node:
            _walk(v, service, path, usage)
    elif isinstance(node, str) and "$" in node:
        context = _context(path, node)
        for m in _REF.finditer(node):
            if m.group(0) == "$$":
                continue
            key = m.group(1) or m.group(3)
            ref = usage.refs.setdefault(key, Ref())
            ref.services.add(service)
            if context:
                ref.contexts.add(context)
            modifier = m.group(2) or ""
            if modifier.startswith((":?", "?")):
                message = modifier[2:] if modifier.startswith(":?") else modifier[1:]
                if ref.required is None or (modifier.startswith(":?") and not ref.required):
                    ref.required = message.strip()
                if modifier.startswith(":?"):
                    ref.contexts.add("required-nonempty")


def _context(path: tuple[str, ...], value: str) -> str:
    """Where in a service a string sits, as a kind hint: port, image, bind, url, bool."""
    if not path:
        return ""
    top = path[0] if path[0] != "<key>" else ""
    last = path[-1]
    if top in _PORT_FIELDS or last in ("published", "target"):
        return "port"
    if top == "image":
        return "image"
    if top == "volumes" and value.startswith("$") and ":" in value:
        return "bind"
    if last in ("source", "device") and top == "volumes":
        return "bind"
    if last in _BOOL_FIELDS:
        return "bool"
    if "://" in value:
        return "url"
    return ""


def profiles_from_env(values: Mapping[str, str]) -> list[str]:
    """COMPOSE_PROFILES as Compose reads it from `.env`: a comma-separated list."""
    raw = values.get("COMPOSE_PROFILES") or ""
    return [p.strip() for p in raw.split(",") if p.strip()]
