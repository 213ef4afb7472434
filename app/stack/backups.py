"""Backups of the stack's .env and the one safe way to save it.

Save = refuse a stale edit (version check) -> back up what is on disk to
`.env_backups/.env.<UTC timestamp>` (0600, last N kept) -> atomic write -> keep recipe copies
(e.g. supabase/docker/.env) in sync. One lock per file (a thread lock plus flock, so a second
Stackpilot process or thread cannot interleave between the version check and the rename).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import EnvConflict
from app.errors import InvalidInput
from app.errors import NotFound
from app.stack.atomic import atomic_write
from app.stack.envfile import EnvDocument
from app.stack.envfile import version_of

log = logging.getLogger(__name__)

BACKUP_DIR = ".env_backups"
NAME_RE = re.compile(r"\.env\.(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?")
MASK = "••••••••"
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Backup:
    name: str
    path: Path
    taken_at: dt.datetime
    size: int


@dataclass(frozen=True)
class SaveResult:
    version: str
    backup: Backup | None
    changed_keys: tuple[str, ...]
    copies: tuple[str, ...]


def backup_dir(stack_dir: Path) -> Path:
    return Path(stack_dir) / BACKUP_DIR


def take_backup(stack_dir: Path, data: bytes, keep: int) -> Backup:
    """Keep `data` as a new backup (mode 0600 in a 0700 folder), then drop all but the newest keep."""
    folder = backup_dir(stack_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f".env.{stamp}"
    n = 0
    while (folder / name).exists():
        n += 1
        name = f".env.{stamp}-{n}"
    atomic_write(folder / name, data, mode=0o600)
    rotate(stack_dir, keep)
    return _backup(folder / name)


def list_backups(stack_dir: Path) -> list[Backup]:
    """Newest first."""
    folder = backup_dir(stack_dir)
    if not folder.is_dir():
        return []
    found = [_backup(p) for p in folder.iterdir() if NAME_RE.fullmatch(p.name) and p.is_file()]
    return sorted(found, key=lambda b: (b.taken_at, b.name), reverse=True)


def rotate(stack_dir: Path, keep: int) -> list[str]:
    removed = []
    for old in list_backups(stack_dir)[max(keep, 1) :]:
        with contextlib.suppress(FileNotFoundError):
            old.path.unlink()
            removed.append(old.name)
    return removed


def get_backup(stack_dir: Path, name: str) -> Backup:
    """A backup by name; the name is checked against the pattern, so no path can sneak in."""
    if not NAME_RE.fullmatch(name or ""):
        raise NotFound("There is no backup with that name.")
    path = backup_dir(stack_dir) / name
    if not path.is_file():
        raise NotFound("There is no backup with that name.")
    return _backup(path)


def _backup(path: Path) -> Backup:
    m = NAME_RE.fullmatch(path.name)
    taken = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    return Backup(path.name, path, taken, path.stat().st_size)


@contextlib.contextmanager
def env_lock(path: Path) -> Iterator[None]:
    """Serialise check-backup-write for one .env across threads and processes."""
    key = str(Path(path).resolve())
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    folder = Path(path).parent / BACKUP_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    with lock:
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def save_env(
    path: Path, data: bytes, based_on: str, keep: int, copies: Iterable[str] = (), mask_keys: set[str] | None = None
) -> SaveResult:
    """Write new .env bytes safely. Raises EnvConflict (with a masked diff) when the file on disk
    is no longer the version the edit started from; never merges."""
    path = Path(path)
    with env_lock(path):
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = None
        if version_of(current) != based_on:
            theirs = diff_text(current or b"", data, mask_keys)
            raise EnvConflict(
                "Someone changed the .env file after you opened this page. Nothing was saved: "
                "reload to see their version, then make your change again.",
                detail="Their file compared with yours (- theirs, + yours):\n" + theirs,
            )
        if current == data:
            return SaveResult(version_of(current), None, (), ())
        backup = take_backup(path.parent, current, keep) if current is not None else None
        atomic_write(path, data, mode=0o600)
        synced = sync_copies(path, data, copies)
    changed = changed_keys(current or b"", data)
    log.info("saved %s (keys changed: %s)", path, ", ".join(changed) or "none")
    return SaveResult(version_of(data), backup, changed, synced)


def sync_copies(path: Path, data: bytes, copies: Iterable[str]) -> tuple[str, ...]:
    """Recipe copies of the .env (relative to the stack folder) get the same bytes, atomically.
    A copy whose folder does not exist yet is skipped (the recipe's prepare step creates it)."""
    done = []
    root = path.parent.resolve()
    for rel in copies:
        target = (root / rel).resolve()
        if root not in target.parents:
            raise InvalidInput(f"The recipe copy {rel!r} is outside the stack folder.")
        if target.parent.is_dir():
            atomic_write(target, data, mode=0o600)
            done.append(rel)
    return tuple(done)


def restore(path: Path, name: str, based_on: str, keep: int, copies: Iterable[str] = ()) -> SaveResult:
    """Put a backup back; the current file is itself backed up first (by save_env)."""
    backup = get_backup(path.parent, name)
    return save_env(path, backup.path.read_bytes(), based_on, keep, copies)


def changed_keys(old: bytes, new: bytes) -> tuple[str, ...]:
    a = EnvDocument.parse(old).values()
    b = EnvDocument.parse(new).values()
    return tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))


def mask_text(text: str, mask_keys: set[str] | None, labels: dict[str, int] | None = None) -> list[str]:
    """The lines of a .env with the values of secret keys replaced by a mask. Pass the same
    `labels` dict for both sides of a diff: equal secrets get the same label (`secret #1`), so a
    changed secret still shows as a change without its value (no hash of it is shown either)."""
    if not mask_keys:
        return text.splitlines()
    labels = {} if labels is None else labels
    out = []
    for e in EnvDocument.parse(text.encode("utf-8", "surrogateescape")).entries:
        piece = e.text.rstrip("\r\n")
        if e.kind == "var" and e.key in mask_keys and e.value:
            label = labels.setdefault(e.value, len(labels) + 1)
            piece = f"{e.prefix}{MASK} (secret #{label})" + (f"  # {e.comment}" if e.comment else "")
        out.extend(piece.split("\n"))
    return out


def diff_lines(
    old: bytes, new: bytes, mask_keys: set[str] | None = None, names: tuple[str, str] = ("before", "after")
) -> list[tuple[str, str]]:
    """(kind, line) pairs of a unified diff, kind in add/del/ctx/hunk; secrets masked."""
    labels: dict[str, int] = {}
    a = mask_text(old.decode("utf-8", "replace").lstrip("\ufeff"), mask_keys, labels)
    b = mask_text(new.decode("utf-8", "replace").lstrip("\ufeff"), mask_keys, labels)
    out = []
    for line in difflib.unified_diff(a, b, names[0], names[1], lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "ctx")
        out.append((kind, line))
    return out


def diff_text(old: bytes, new: bytes, mask_keys: set[str] | None = None) -> str:
    return "\n".join(line for _, line in diff_lines(old, new, mask_keys)) or "(no difference)"
