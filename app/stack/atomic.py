"""Crash-safe file replacement: after a crash the file holds either the old or the new bytes.

Temp file in the same folder (same filesystem, so the rename is atomic), fsync of the data,
the original's mode and owner carried over, os.replace, then fsync of the folder so the rename
itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path

log = logging.getLogger(__name__)
TEMP_MARK = ".stackpilot-tmp-"
STALE_AFTER = 60


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace path with data atomically. mode: for a new file (default 0600); an existing
    file keeps its own mode and owner. A symlink is written through: its target is replaced
    atomically and the link stays a link."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    folder = path.parent
    uid = gid = None
    try:
        st = path.stat()
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        mode = 0o600 if mode is None else mode
    _clean_stale_temps(path)
    tmp = folder / f".{path.name}{TEMP_MARK}{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
            if uid is not None and (uid, gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(f.fileno(), uid, gid)
                except PermissionError:
                    log.warning("cannot keep the owner of %s (not allowed); it now belongs to us", path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_stale_temps(path: Path) -> None:
    """Temp files left by a writer that was killed mid-write are garbage: the target is intact."""
    now = time.time()
    for stale in path.parent.glob(f".{path.name}{TEMP_MARK}*"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > STALE_AFTER:  # a live writer's temp is younger
                stale.unlink()
