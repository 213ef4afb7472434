"""The backups folder: one folder per stack, one per backup, a manifest.json and one archive per mount.

Every name written is made here from parts that cannot leave the folder: the stack key, the backup id
and archive names are reduced to [A-Za-z0-9_.-] and checked against the resolved root, so a hostile
mount path or backup name writes nothing outside the backups folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import InvalidInput
from app.errors import NotFound

MANIFEST = "manifest.json"
PARTIAL = ".partial"
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
ID_RE = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9_.-]{1,80}$")
FILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,120}\.(tar\.gz|sql\.gz|rdb)$")


def safe_part(text: str, limit: int = 60) -> str:
    """A file-name part from any text: no separators, no dots alone, never empty."""
    cleaned = SAFE.sub("_", text).strip("._")[:limit]
    return cleaned or "x"


def stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Entry:
    """One archive of a backup: a mount of a service (or its database dump)."""

    service: str
    kind: str  # volume | bind | dump
    name: str  # compose volume key, bind source, or the dump's tool
    source: str
    target: str
    file: str = ""
    image: str = ""
    tar_bytes: int = 0
    file_bytes: int = 0
    sha256: str = ""
    files: int = 0


@dataclass
class Manifest:
    id: str
    stack: str
    project: str
    scope: str  # a service name, "all", or "safety:<service>"
    taken_at: str
    status: str = "running"  # running | ok | failed
    error: str = ""
    duration: float = 0.0
    modes: dict[str, str] = field(default_factory=dict)  # service -> stop|dump|live|skip
    downtime: dict[str, float] = field(default_factory=dict)  # service -> seconds stopped
    env_backup: str = ""
    entries: list[Entry] = field(default_factory=list)
    user: str = ""

    @property
    def size(self) -> int:
        return sum(e.file_bytes for e in self.entries)

    def to_json(self) -> str:
        data = dict(self.__dict__)
        data["entries"] = [dict(e.__dict__) for e in self.entries]
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        entries = [
            Entry(**{k: v for k, v in e.items() if k in Entry.__dataclass_fields__}) for e in data.pop("entries", [])
        ]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, entries=entries)


class BackupStore:
    """The backups of one stack under root/<stack key>/."""

    def __init__(self, root: Path, stack_key: str) -> None:
        self.root = Path(root).resolve()
        self.folder = self.root / safe_part(stack_key, 100)
        self._inside(self.folder)

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InvalidInput("That name would leave the backups folder.")
        return resolved

    def new_id(self, scope: str) -> str:
        base = f"{stamp()}-{safe_part(scope)}"
        candidate, n = base, 1
        while (self.folder / candidate).exists() or (self.folder / (candidate + PARTIAL)).exists():
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def path(self, backup_id: str) -> Path:
        if not ID_RE.match(backup_id or ""):
            raise NotFound("There is no backup by that name.")
        return self._inside(self.folder / backup_id)

    def begin(self, manifest: Manifest) -> Path:
        """The folder a backup is written into; it gets its final name only when done."""
        work = self._inside(self.folder / (manifest.id + PARTIAL))
        work.mkdir(parents=True, mode=0o700)
        self.write_manifest(work, manifest)
        return work

    def finish(self, work: Path, manifest: Manifest) -> Path:
        self.write_manifest(work, manifest)
        final = self.path(manifest.id)
        os.replace(work, final)
        return final

    def write_manifest(self, folder: Path, manifest: Manifest) -> None:
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(manifest.to_json())
        os.chmod(tmp, 0o600)
        os.replace(tmp, folder / MANIFEST)

    def archive_path(self, folder: Path, index: int, entry: Entry, suffix: str) -> Path:
        name = f"{index:02d}-{safe_part(entry.service, 40)}-{safe_part(entry.name, 50)}.{suffix}"
        if not FILE_RE.match(name):
            raise InvalidInput("That archive name is not allowed.")
        return self._inside(folder / name)

    def get(self, backup_id: str) -> Manifest:
        folder = self.path(backup_id)
        try:
            return Manifest.from_json((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise NotFound("There is no backup by that name.") from None

    def file(self, backup_id: str, name: str) -> Path:
        """An archive of a backup, by its manifest name only."""
        manifest = self.get(backup_id)
        if not FILE_RE.match(name or "") or name not in {e.file for e in manifest.entries}:
            raise NotFound("That backup has no such file.")
        path = self._inside(self.path(backup_id) / name)
        if not path.is_file():
            raise NotFound("That backup's file is missing.")
        return path

    def list(self) -> list[Manifest]:
        """Every backup, newest first; one still being written shows as running."""
        found: list[Manifest] = []
        if not self.folder.is_dir():
            return found
        for child in self.folder.iterdir():
            try:
                found.append(Manifest.from_json((child / MANIFEST).read_text()))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda m: m.id, reverse=True)

    def delete(self, backup_id: str) -> None:
        shutil.rmtree(self.path(backup_id))

    def prune(self, keep: int, scope_prefix: str = "") -> list[str]:
        """Remove the oldest finished backups past `keep` (of the scopes starting with scope_prefix)."""
        done = [
            m
            for m in self.list()
            if m.status != "running" and m.scope.startswith(scope_prefix) and not m.scope.startswith("safety:")
        ]
        removed = []
        for m in done[keep:]:
            self.delete(m.id)
            removed.append(m.id)
        return removed
