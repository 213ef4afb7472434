"""Stack identity: the one project name every page, the wizard, the launch and the logs use.

Why one function: Compose names a project by `name:` in the files, else COMPOSE_PROJECT_NAME in the
`.env`, else the folder. When we guess differently, a host `docker compose ps` shows nothing and
the table loses the containers. And exactly when the files or the `.env` are broken (Compose
cannot say), the containers must stay visible: the last name Compose gave is kept in the store.

Order: the name saved in Stack settings (a person chose it, or the wizard's launch did), then the
project of Stackpilot's own container when it runs in this very folder's project (its labels are
the truth, e.g. `-p localai` given on the host), then Compose's own choice, then the last good
one, then the folder.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from typing import Protocol

from app.compose import Runners
from app.engine.self import OwnProject
from app.errors import StackpilotError
from app.stack import default_files
from app.stack import normalize_project_name
from app.stack.envfile import EnvDocument

LAST_GOOD = "stack.last_project"
_NAME = re.compile(r"(?m)^name:[ \t]*(\S[^#\n]*?)[ \t]*(?:#.*)?$")


class SettingsStore(Protocol):
    def get_setting(self, key: str, default: Any = None) -> Any: ...

    def set_setting(self, key: str, value: Any) -> None: ...


def own_project_here(own: OwnProject | None, directory: Path) -> OwnProject | None:
    """Our container's project when it was started from this stack folder, else None."""
    if own is None or not own.project:
        return None
    if own.working_dir and own.working_dir.rstrip("/") != str(directory).rstrip("/"):
        return None
    return own


def _marks(directory: Path, files: tuple[str, ...]) -> tuple:
    return (
        str(directory),
        files,
        tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in [*(directory / f for f in files), directory / ".env"]),
    )


_failed: dict[tuple, float] = {}  # files Compose could not name (until they change): no re-run per page


def written_name(directory: Path, files: tuple[str, ...]) -> str | None:
    """Compose's rule read from the files themselves, for when Compose cannot load them (e.g.
    appwrite's interpolated depends_on fails `config --no-interpolate`): COMPOSE_PROJECT_NAME in
    the .env, else the last literal top-level `name:`; None when neither says."""
    env = EnvDocument.load(directory / ".env")
    if env.exists and (value := (env.get("COMPOSE_PROJECT_NAME") or "").strip()):
        return normalize_project_name(value)
    found = None
    for f in files:
        try:
            text = (directory / f).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if (m := _NAME.search(text)) and "$" not in m.group(1):
            found = m.group(1).strip().strip("'\"")
    return normalize_project_name(found) if found else None


def compose_name(runners: Runners, directory: Path, files: list[str] | tuple[str, ...], store: SettingsStore) -> str:
    """Compose's own choice for the folder; when it cannot say, the last good one (same folder),
    else the name Compose's rule gives from the files as written, else the folder's name. A good
    answer from Compose is remembered."""
    files = tuple(files or default_files(directory))
    key = f"{LAST_GOOD}:{directory}"  # one per folder: several stacks keep their own
    last = store.get_setting(key) or {}
    marks = _marks(directory, files)
    try:
        if marks in _failed:
            raise StackpilotError("Compose could not read these files (unchanged since).")
        name = runners.default_project_name(directory, files)
    except StackpilotError:
        _failed[marks] = time.time()
        if last.get("directory") == str(directory) and last.get("project"):
            return str(last["project"])
        return written_name(directory, files) or normalize_project_name(directory.name)
    if last.get("project") != name or last.get("directory") != str(directory):
        store.set_setting(key, {"directory": str(directory), "project": name})
    return name


def project_name(
    runners: Runners, directory: Path, saved: dict, store: SettingsStore, own: OwnProject | None = None
) -> str:
    """The project name to act on (see the module doc for the order)."""
    if saved.get("project"):
        return str(saved["project"])
    if mine := own_project_here(own, directory):
        return mine.project
    return compose_name(runners, directory, saved.get("files") or (), store)
