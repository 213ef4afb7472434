"""The stack registry: every stack Stackpilot knows, on every engine, kept in the store.

A stack is (slug, folder and compose files, project name, engine id). The registry is fed by:
the compose projects an engine knows (its containers' com.docker.compose.* labels, running or
stopped: one list call per engine), a stacks root folder (each subfolder with a compose file, like
Dockge's /opt/stacks), folders added by path, new folders made from a pasted compose file or a
cloned git repository, and STACKPILOT_STACK_DIR (the "default" stack, opened first).

A stack whose folder is not reachable from here (started elsewhere, another machine) is still a
stack: it is shown from its containers, and says which folder to add to manage it fully.

No Flask, no Docker SDK: the engine's container rows come in as plain dicts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import yaml

from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import DEFAULT_FILES
from app.stack import Stack
from app.stack import default_files
from app.stack import normalize_project_name
from app.stack.atomic import atomic_write

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROJECT_LABEL = "com.docker.compose.project"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
ONEOFF_LABEL = "com.docker.compose.oneoff"
SOURCES = ("env", "root", "added", "created", "engine")
GIT_TIMEOUT = 300
MAX_COMPOSE_BYTES = 1024 * 1024
_NAME_LINE = re.compile(r"(?m)^name:\s*[\"']?([A-Za-z0-9_-]+)[\"']?\s*$")
_ENV_PROJECT = re.compile(r"(?m)^\s*COMPOSE_PROJECT_NAME\s*=\s*[\"']?([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class StackEntry:
    """One registered stack. `project` "" means "ask Compose" (the default stack's own rule)."""

    slug: str
    project: str
    directory: str = ""
    files: tuple[str, ...] = ()
    engine: str = "local"
    source: str = "added"
    added_at: float = 0.0

    @property
    def path(self) -> Path | None:
        return Path(self.directory) if self.directory else None

    @property
    def reachable(self) -> bool:
        """Its compose files are readable here, so Compose can manage it fully (before any saved
        settings: use files_reachable(entry.stack(saved)) when they may name other files)."""
        return self.path is not None and files_reachable(self.stack())

    def stack(self, saved: dict | None = None) -> Stack:
        """The Stack Compose acts on, saved settings (project, files, profiles) laid over the entry."""
        saved = saved or {}
        directory = self.path or Path("/nonexistent") / self.slug
        files = tuple(saved.get("files") or self.files or (default_files(directory) if directory.is_dir() else ()))
        project = saved.get("project") or self.project or normalize_project_name(directory.name)
        return Stack(
            directory=directory,
            project=project,
            files=files,
            profiles=tuple(saved.get("profiles") or ()),
            engine=self.engine,
        )

    def what_to_add(self) -> str:
        """For a stack seen only through its containers: what makes it fully managed."""
        where = f" ({self.directory})" if self.directory else ""
        return (
            f"Its compose files{where} are not reachable from Stackpilot. Mount that folder at the same "
            "path (or set STACKPILOT_STACKS_DIR to its parent folder), or add the folder by path, "
            "to edit, update and recreate it; until then, containers can be started, stopped, "
            "restarted and their logs read."
        )


def files_reachable(stack: Stack) -> bool:
    """The stack's folder and compose files are readable here."""
    if not stack.directory.is_dir():
        return False
    if stack.files:
        return all((stack.directory / name).is_file() for name in stack.files)
    return bool(default_files(stack.directory))


@dataclass
class ProjectSeen:
    """One compose project as an engine's containers describe it."""

    project: str
    working_dir: str = ""
    config_files: tuple[str, ...] = ()
    states: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    containers: int = 0


def _health(status: str) -> str:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return "starting" if word == "health: starting" else word
    return ""


def projects_from_containers(rows: Iterable[dict]) -> dict[str, ProjectSeen]:
    """Compose projects from one `containers(all=True)` listing: folder, files, state counts and
    the problems a person should see (unhealthy, restarting, exited with an error)."""
    seen: dict[str, ProjectSeen] = {}
    for row in rows:
        labels = row.get("Labels") or {}
        project = labels.get(PROJECT_LABEL)
        if not project or labels.get(ONEOFF_LABEL, "False") == "True":
            continue
        entry = seen.setdefault(project, ProjectSeen(project))
        if not entry.working_dir and labels.get(WORKING_DIR_LABEL):
            entry.working_dir = labels[WORKING_DIR_LABEL]
            entry.config_files = tuple(f for f in labels.get(CONFIG_FILES_LABEL, "").split(",") if f)
        state = row.get("State") or "unknown"
        status = row.get("Status") or ""
        entry.states[state] = entry.states.get(state, 0) + 1
        entry.containers += 1
        name = ((row.get("Names") or ["?"])[0]).lstrip("/")
        health = _health(status)
        if health == "unhealthy":
            entry.problems.append(f"{name} is unhealthy")
        elif state == "restarting":
            entry.problems.append(f"{name} keeps restarting")
        elif state == "exited" and "(0)" not in status:
            entry.problems.append(f"{name} exited: {status}")
        elif state == "dead":
            entry.problems.append(f"{name} is dead")
    return seen


def relative_files(directory: str, config_files: Iterable[str]) -> tuple[str, ...]:
    """Compose's absolute config file paths as names relative to the folder (others kept whole)."""
    out = []
    for path in config_files:
        try:
            out.append(str(Path(path).relative_to(directory)))
        except ValueError:
            out.append(path)
    return tuple(out)


def project_guess(directory: Path, files: Iterable[str] = ()) -> str:
    """The project name Compose would pick, read cheaply: top-level `name:`, COMPOSE_PROJECT_NAME
    in .env, else the folder (no Compose process: the home page scans many folders)."""
    for name in list(files) or list(default_files(directory)):
        try:
            if match := _NAME_LINE.search((directory / name).read_text(errors="replace")[:65536]):
                return normalize_project_name(match[1])
        except OSError:
            pass
    try:
        if match := _ENV_PROJECT.search((directory / ".env").read_text(errors="replace")):
            return normalize_project_name(match[1])
    except OSError:
        pass
    return normalize_project_name(directory.name)


def scan_root(root: Path) -> list[Path]:
    """Subfolders of the stacks root that hold a compose file (not hidden), sorted."""
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    return [p for p in children if default_files(p)]


def check_folder(path: str) -> Path:
    """A folder a person typed: absolute, existing, holding a compose file."""
    raw = (path or "").strip()
    if not raw or not raw.startswith("/") or "\0" in raw:
        raise InvalidInput("Give the stack folder's absolute path, e.g. /opt/stacks/media.")
    folder = Path(os.path.normpath(raw))
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder Stackpilot can see.")
    if not default_files(folder):
        raise InvalidInput(f"{folder} holds no compose file ({', '.join(DEFAULT_FILES)}).")
    return folder


def check_new_name(root: Path | None, name: str) -> Path:
    """The folder for a new stack under the root: a Compose project name, not taken yet."""
    if root is None:
        raise InvalidInput("Set STACKPILOT_STACKS_DIR (the stacks root folder) to create new stacks.")
    name = (name or "").strip()
    if not SLUG.match(name):
        raise InvalidInput("The name may hold lowercase letters, digits, - and _ (it becomes the project name).")
    folder = root / name
    if folder.exists():
        raise InvalidInput(f"{folder} exists already; add it by path instead.")
    return folder


def check_compose_text(text: str) -> bytes:
    """A pasted compose file: YAML with a `services:` (or `include:`) mapping; Compose itself
    judges the rest once the stack is open (its page shows Compose's own error)."""
    data = (text or "").replace("\r\n", "\n").encode()
    if not data.strip():
        raise InvalidInput("Paste a compose file (or choose one to upload).")
    if len(data) > MAX_COMPOSE_BYTES:
        raise InvalidInput("That compose file is larger than 1 MiB.")
    try:
        parsed = yaml.safe_load(data)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput(f"That is not valid YAML{where}.") from None
    if not isinstance(parsed, dict) or not (isinstance(parsed.get("services"), dict) or parsed.get("include")):
        raise InvalidInput("A compose file needs a top-level services: (or include:) section.")
    return data if data.endswith(b"\n") else data + b"\n"


def check_git_url(url: str) -> str:
    """A repository URL git may clone; never an option smuggled in."""
    url = (url or "").strip()
    if not url or url.startswith("-") or any(c in url for c in "\n\r\0 "):
        raise InvalidInput("Give a git URL such as https://github.com/coleam00/local-ai-packaged.git.")
    if not re.match(r"^(https://|http://|ssh://|git@|file://|/)", url):
        raise InvalidInput("Use an https://, ssh://, git@ or file:// URL, or an absolute path.")
    return url


def git_clone(url: str, folder: Path) -> list[str]:
    """Clone url into folder (which must not exist); the output lines. A failed clone leaves
    nothing behind."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
    argv = ["git", "-c", "protocol.ext.allow=never", "clone", "--depth", "1", "--", url, str(folder)]
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise StackpilotError(
            "git is not installed where Stackpilot runs, so the repository cannot be "
            "cloned (rebuild the image with --build-arg WITH_GIT=1)."
        ) from None
    except subprocess.TimeoutExpired:
        _remove_tree(folder)
        raise StackpilotError(f"git clone did not finish within {GIT_TIMEOUT} s.") from None
    if done.returncode != 0:
        _remove_tree(folder)
        raise StackpilotError("git clone failed.", detail=(done.stderr or done.stdout)[-3000:])
    return (done.stdout + done.stderr).splitlines()


def _remove_tree(folder: Path) -> None:
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass


# -- the registry ------------------------------------------------------------------------------------
class StackRegistry:
    """The stacks table and its feeds. Writes happen only when something new appears, so the home
    page's refresh is a read in the common case."""

    def __init__(self, store, root: Path | None = None, default_dir: Path | None = None) -> None:
        self.store = store
        self.root = root
        self.default_dir = default_dir

    # -- reading -----------------------------------------------------------------------------------
    def all(self) -> list[StackEntry]:
        rows = self.store.select("SELECT * FROM stacks ORDER BY slug")
        entries = [_entry(r) for r in rows]
        # The default stack first, then by name.
        return sorted(entries, key=lambda e: (e.source != "env", e.slug))

    def get(self, slug: str) -> StackEntry | None:
        if not isinstance(slug, str) or not SLUG.match(slug):
            return None
        rows = self.store.select("SELECT * FROM stacks WHERE slug = ?", (slug,))
        return _entry(rows[0]) if rows else None

    def require(self, slug: str) -> StackEntry:
        entry = self.get(slug)
        if entry is None:
            raise NotFound("There is no stack by that name.")
        return entry

    def default(self) -> StackEntry | None:
        """The stack the old un-prefixed pages serve: STACKPILOT_STACK_DIR's, or the only stack
        that has a folder (stacks merely seen on an engine never become the default)."""
        entries = [e for e in self.all() if e.source != "engine"]
        for entry in entries:
            if entry.source == "env":
                return entry
        return entries[0] if len(entries) == 1 else None

    def find(self, engine: str, project: str, directory: str = "") -> StackEntry | None:
        for entry in self.all():
            if entry.engine != engine:
                continue
            if entry.project == project or (directory and entry.directory == directory):
                return entry
        return None

    # -- writing -----------------------------------------------------------------------------------
    @staticmethod
    def _free_slug(conn, wanted: str, engine: str = "local") -> str:
        def taken(slug: str) -> bool:
            return conn.execute("SELECT 1 FROM stacks WHERE slug = ?", (slug,)).fetchone() is not None

        base = normalize_project_name(wanted)[:50] or "stack"
        if engine != "local" and taken(base):
            base = f"{base}-{normalize_project_name(engine)[:10]}"
        slug, n = base, 2
        while taken(slug):
            slug, n = f"{base}-{n}", n + 1
        return slug

    def add(
        self,
        *,
        project: str,
        directory: str = "",
        files: Iterable[str] = (),
        engine: str = "local",
        source: str = "added",
        slug: str = "",
    ) -> StackEntry:
        """Register a stack, or return the one already registered for that project or folder on that
        engine. One write transaction: two pages discovering the same project register it once."""
        engine = engine or "local"
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM stacks WHERE engine = ? AND ((? != '' AND project = ?) OR (? != '' AND directory = ?)) "
                "ORDER BY added_at LIMIT 1",
                (engine, project, project, directory, directory),
            ).fetchone()
            if row is not None:
                if directory and not row["directory"]:
                    conn.execute(
                        "UPDATE stacks SET directory = ?, files = ? WHERE slug = ?",
                        (directory, json.dumps(list(files)), row["slug"]),
                    )
                found = row["slug"]
            else:
                free = (
                    bool(slug)
                    and SLUG.match(slug)
                    and conn.execute("SELECT 1 FROM stacks WHERE slug = ?", (slug,)).fetchone() is None
                )
                found = slug if free else self._free_slug(conn, project or Path(directory).name, engine)
                conn.execute(
                    "INSERT INTO stacks (slug, project, directory, files, engine, source, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (found, project, directory, json.dumps(list(files)), engine, source, time.time()),
                )
        return self.require(found)

    def forget(self, slug: str) -> None:
        """Drop a stack from the registry (its files and containers are left alone). Users limited
        to it keep that limit: deleting their rows would read as "no limit", i.e. every stack."""
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM stacks WHERE slug = ?", (slug,))

    def ensure_default(self) -> StackEntry | None:
        """STACKPILOT_STACK_DIR's stack, registered first under its folder's name."""
        if self.default_dir is None:
            return None
        directory = str(self.default_dir)
        for entry in self.all():
            if entry.source == "env":
                if entry.directory == directory:
                    return entry
                self.forget(entry.slug)  # the setting now names another folder
        for entry in self.all():
            if entry.directory == directory and entry.engine == "local":
                with self.store.transaction() as conn:
                    conn.execute("UPDATE stacks SET source = 'env', project = '' WHERE slug = ?", (entry.slug,))
                return self.get(entry.slug)
        with self.store.transaction() as conn:
            slug = self._free_slug(conn, self.default_dir.name)
            conn.execute(
                "INSERT INTO stacks (slug, project, directory, files, engine, source, added_at) "
                "VALUES (?, '', ?, '[]', 'local', 'env', ?)",
                (slug, directory, time.time()),
            )
        return self.get(slug)

    def sync_root(self) -> list[StackEntry]:
        """Register every compose folder under the stacks root not known yet; the new ones."""
        if self.root is None:
            return []
        known = {e.directory for e in self.all()}
        new = []
        for folder in scan_root(self.root):
            if str(folder) not in known:
                new.append(self.add(project=project_guess(folder), directory=str(folder), source="root"))
        return new

    def sync_engine(
        self, engine: str, seen: dict[str, ProjectSeen], project_of: dict[str, str] | None = None
    ) -> list[StackEntry]:
        """Register the engine's compose projects not known yet (by project name, or by folder for
        stacks whose project Compose decides: `project_of` maps slug -> resolved project)."""
        project_of = project_of or {}
        entries = [e for e in self.all() if e.engine == engine]
        by_project = {project_of.get(e.slug) or e.project: e for e in entries}
        by_dir = {e.directory: e for e in entries if e.directory}
        new = []
        for project, info in seen.items():
            if project in by_project or (
                info.working_dir and info.working_dir in by_dir and not by_dir[info.working_dir].project
            ):
                continue
            files = relative_files(info.working_dir, info.config_files) if info.working_dir else ()
            new.append(
                self.add(project=project, directory=info.working_dir, files=files, engine=engine, source="engine")
            )
        return new

    def create_from_compose(self, name: str, text: str) -> StackEntry:
        """A new folder under the root holding the pasted compose file, registered as a stack."""
        folder = check_new_name(self.root, name)
        data = check_compose_text(text)
        folder.mkdir(mode=0o755)
        try:
            atomic_write(folder / "compose.yaml", data, mode=0o644)
        except OSError:
            _remove_tree(folder)
            raise
        return self.add(project=name, directory=str(folder), files=("compose.yaml",), source="created", slug=name)

    def create_from_git(self, name: str, url: str) -> tuple[StackEntry, list[str]]:
        """Clone a repository into a new folder under the root and register it; (entry, git output)."""
        folder = check_new_name(self.root, name)
        url = check_git_url(url)
        lines = git_clone(url, folder)
        if not default_files(folder):
            _remove_tree(folder)
            raise InvalidInput(f"The repository holds no compose file at its top ({', '.join(DEFAULT_FILES)}).")
        entry = self.add(project=project_guess(folder), directory=str(folder), source="created", slug=name)
        return entry, lines

    # -- who may see which stack ---------------------------------------------------------------------
    def allowed(self, user_id: int) -> set[str] | None:
        """The stacks a user is limited to, or None for every stack (no rows: no limit)."""
        rows = self.store.select("SELECT stack FROM user_stacks WHERE user_id = ?", (user_id,))
        return {r[0] for r in rows} or None

    def set_allowed(self, user_id: int, slugs: Iterable[str]) -> None:
        """Limit a user to these stacks (none given: every stack)."""
        slugs = sorted({s for s in slugs if self.get(s) is not None})
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM user_stacks WHERE user_id = ?", (user_id,))
            conn.executemany("INSERT INTO user_stacks (user_id, stack) VALUES (?, ?)", [(user_id, s) for s in slugs])

    def last_actions(self) -> dict[str, tuple[float, str, str, str, str]]:
        """Per stack, its latest audit row: (at, username, action, target, result)."""
        rows = self.store.select(
            "SELECT a.stack, a.at, a.username, a.action, a.target, a.result FROM audit a "
            "JOIN (SELECT stack, MAX(id) AS id FROM audit WHERE stack != '' GROUP BY stack) m ON m.id = a.id"
        )
        return {r[0]: tuple(r[1:]) for r in rows}


def _entry(row) -> StackEntry:
    try:
        files = tuple(json.loads(row["files"] or "[]"))
    except ValueError:
        files = ()
    return StackEntry(
        row["slug"], row["project"], row["directory"], files, row["engine"], row["source"], row["added_at"]
    )
