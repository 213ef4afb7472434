"""The managed stack: where it lives and how Compose is asked about it.

A Stack is a compose project folder with its ordered compose files, active profiles and project
name. Its settings live in the store (key "stack"); defaults come from the folder itself.
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

    @property
    def env_path(self) -> Path:
        return self.directory / ".env"

    def with_changes(self, **changes) -> Stack:
        return replace(self, **changes)


def normalize_project_name(name: str) -> str:
    """Compose's own rule: lowercase letters, digits, dashes and underscores."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("-_") or "stack"


def default_files(directory: Path) -> tuple[str, ...]:
    for name in DEFAULT_FILES:
        if (directory / name).is_file():
            return (name,)
    return ()


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
        path = (directory / name).resolve()
        if directory.resolve() not in path.parents or not path.is_file():
            raise InvalidInput(f"{name!r} is not a file in the stack folder.")
        clean_files.append(str(path.relative_to(directory.resolve())))
    for profile in profiles:
        if not PROFILE_NAME.match(profile):
            raise InvalidInput(f"{profile!r} is not a valid profile name.")
    return {"project": project, "files": clean_files, "profiles": list(profiles)}
