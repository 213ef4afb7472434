"""The managed stack: where it lives and how Compose is asked about it.

A Stack is a compose project folder with its ordered compose files, active profiles and project
name. Its settings live in the store (key "stack"); defaults come from the folder itself.

- ``compose_files_in(directory)``: every compose file in the folder and its subfolders (overrides,
  prod/dev/gpu variants, ``reverse-proxy/...``), defaults first: the list the wizard and Stack
  settings both offer for ticking in order.
- ``order_files(chosen, positions)``: the ticked files in the order the person gave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

from app.errors import InvalidInput

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROFILE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Stack:
    directory: Path
    project: str
    files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = field(default_factory=tuple)
    engine: str = "local"  # the EngineRegistry id of the engine it runs on (issue 11)

    @property
    def env_path(self) -> Path:
        return self.directory / ".env"

    def with_changes(self, **changes) -> Stack:
        return replace(self, **changes)


def normalize_project_name(name: str) -> str:
    """Compose's own rule: lowercase letters, digits, dashes and underscores."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("-_") or "stack"


def default_files(directory: Path) -> tuple[str, ...]:
    """The files Compose reads when given none: the first default name, and its `.override`."""
    for name in DEFAULT_FILES:
        if (directory / name).is_file():
            stem, dot, ext = name.rpartition(".")
            override = f"{stem}.override.{ext}"
            return (name, override) if (directory / override).is_file() else (name,)
    return ()


_COMPOSE_SUFFIXES = (".yml", ".yaml")
_COMPOSE_TOP = re.compile(r"(?m)^(services|include)\s*:")
_SKIPPED_DIRS = {"node_modules", "volumes", "data", "vendor", "__pycache__"}
MAX_CANDIDATES = 200
_MAX_COMPOSE_BYTES = 2 * 1024 * 1024


def _looks_like_compose(path: Path) -> bool:
    try:
        if path.stat().st_size > _MAX_COMPOSE_BYTES:
            return False
        head = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(_COMPOSE_TOP.search(head))


def compose_files_in(directory: Path, max_depth: int = 3) -> list[str]:
    """Compose files below directory (relative paths): the default file and its override first,
    then the rest of the top folder, then subfolders, each sorted. Hidden and data folders are
    skipped; files that hold no top-level `services:`/`include:` are not compose files."""
    found: list[tuple[int, str]] = []
    root = Path(directory)

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError:
            return
        for entry in entries:
            if len(found) >= MAX_CANDIDATES or entry.name.startswith("."):
                continue
            if entry.is_symlink() and entry.is_dir():
                continue
            if entry.is_dir():
                if depth < max_depth and entry.name not in _SKIPPED_DIRS:
                    walk(entry, depth + 1)
            elif entry.name.endswith(_COMPOSE_SUFFIXES) and _looks_like_compose(entry):
                found.append((depth, str(entry.relative_to(root))))

    walk(root, 0)
    defaults = [n for n in DEFAULT_FILES if (root / n).is_file()]
    rank = {name: i for i, name in enumerate(defaults[:1])}
    overrides = [n.replace(".yml", ".override.yml").replace(".yaml", ".override.yaml") for n in defaults[:1]]
    for i, name in enumerate(overrides):
        rank[name] = len(rank) + i
    return [name for _depth, name in sorted(found, key=lambda f: (rank.get(f[1], len(rank)), f[0], f[1]))]


def order_files(chosen: list[str], positions: dict[str, str] | None = None) -> list[str]:
    """The ticked files in the person's order: by the position typed beside each (a number),
    ties and blanks keeping the order of the list."""
    positions = positions or {}

    def key(item: tuple[int, str]) -> tuple[float, int]:
        raw = (positions.get(item[1]) or "").strip()
        try:
            return float(raw), item[0]
        except ValueError:
            return float("inf"), item[0]

    return [name for _i, name in sorted(enumerate(dict.fromkeys(chosen)), key=key)]


def stack_from(directory: Path, saved: dict | None = None) -> Stack:
    """The Stack for a folder, with saved settings (project, files, profiles) laid over defaults."""
    saved = saved or {}
    project = saved.get("project") or normalize_project_name(directory.name)
    files = tuple(saved.get("files") or default_files(directory))
    profiles = tuple(saved.get("profiles") or ())
    return Stack(directory=directory, project=project, files=files, profiles=profiles)


def validate_settings(directory: Path, project: str, files: list[str], profiles: list[str]) -> dict:
    """Check stack settings typed by a person; returns the dict to save."""
    if not PROJECT_NAME.match(project):
        raise InvalidInput("The project name may hold lowercase letters, digits, - and _ only.")
    clean_files = []
    for name in files:
        # A NUL or an over-long name cannot name a file: a clear refusal, not an OSError (a 500).
        if "\x00" in name or len(name) > 4096 or any(len(part.encode()) > 255 for part in name.split("/")):
            raise InvalidInput(
                f"{name[:80]!r}{'…' if len(name) > 80 else ''} is not a file name "
                "(no NUL, at most 255 bytes per folder or file name)."
            )
        path = (directory / name).resolve()
        if directory.resolve() not in path.parents or not path.is_file():
            raise InvalidInput(f"{name!r} is not a file in the stack folder.")
        clean_files.append(str(path.relative_to(directory.resolve())))
    for profile in profiles:
        if not PROFILE_NAME.match(profile):
            raise InvalidInput(f"{profile!r} is not a valid profile name.")
    return {"project": project, "files": clean_files, "profiles": list(profiles)}
