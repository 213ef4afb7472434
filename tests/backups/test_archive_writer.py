"""The archive writer's buffer path (a source that can readinto, like a volume's stream): members framed
in place, written through O_DIRECT or the ordinary way, and a source or disk failing halfway."""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from app.backups import streams
from app.backups.streams import write_gzip

SLOTTED = streams.MEMBER_DATA  # the data one slotted member holds


def sizes_and_contents():
    noise = os.urandom(2 * SLOTTED + 1)
    text = b"INSERT INTO t VALUES (42, 'some text');\n" * 200_000
    return [
        ("empty", b""),
        ("one byte", b"x"),
        ("one member exactly", noise[:SLOTTED]),
        ("a member and a byte", noise[: SLOTTED + 1]),
        ("noise then text", noise + text),
        ("text then noise", text + noise[:100_000]),
    ]


def threads_left() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("backup-read", "backup-write")]


@pytest.mark.parametrize("name,data", sizes_and_contents(), ids=[n for n, _ in sizes_and_contents()])
def test_a_readinto_source_writes_a_standard_gzip(tmp_path, name, data):
    path = tmp_path / "a.tar.gz"
    written = write_gzip(io.BytesIO(data), path)
    raw = path.read_bytes()
    assert gzip.decompress(raw) == data
    assert b"".join(streams.read_gzip(path)) == data
    assert written.tar_bytes == len(data) and written.file_bytes == len(raw)
    assert written.sha256 == hashlib.sha256(raw).hexdigest()
    if len(data) > 100_000 and data[:20] == data[40:60]:  # text first: compressed
        assert written.file_bytes < len(data) / 2
    assert not threads_left()


def test_without_o_direct_the_file_is_written_the_ordinary_way(tmp_path, monkeypatch):
    """Some file systems (NAS mounts, older tmpfs) refuse O_DIRECT at the first write, not at open."""
    real_write = os.write
    refused = []

    def write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    data = os.urandom(3 * SLOTTED + 12345)
    path = tmp_path / "a.tar.gz"
    written = write_gzip(io.BytesIO(data), path)
    assert refused and gzip.decompress(path.read_bytes()) == data
    assert written.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


class Breaking(io.RawIOBase):
    """A source that fails after `after` bytes, as a volume's stream does when its container dies."""

    def __init__(self, after: int) -> None:
        self.left = after

    def readinto(self, b) -> int:
        if self.left <= 0:
            raise ConnectionError("the engine went away")
        n = min(len(b), self.left)
        b[:n] = os.urandom(n)
        self.left -= n
        return n


def test_a_source_failing_halfway_raises_and_leaves_no_thread(tmp_path):
    with pytest.raises(ConnectionError, match="went away"):
        write_gzip(Breaking(5 * SLOTTED + 99), tmp_path / "a.tar.gz")
    assert not threads_left()


def test_a_disk_failing_halfway_raises_and_leaves_no_thread(tmp_path, monkeypatch):
    calls = []

    def full(self, data, aligned=False):
        calls.append(len(data))
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    monkeypatch.setattr(streams._DirectFile, "write", full)
    with pytest.raises(OSError, match="No space"):
        write_gzip(io.BytesIO(os.urandom(20 * SLOTTED)), tmp_path / "a.tar.gz")
    assert not threads_left()


def test_o_direct_only_on_a_local_disk_file_system(tmp_path):
    """A NAS backups folder (NFS/SMB) or tmpfs is written the ordinary way; the archive is the same."""
    assert not streams.local_disk(Path("/proc/self"))
    shm = Path("/dev/shm")
    if not shm.is_dir() or "tmpfs" not in Path("/proc/self/mountinfo").read_text():
        pytest.skip("no tmpfs at /dev/shm here")
    assert not streams.local_disk(shm)
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="sptest-"))
    try:
        data = os.urandom(2 * SLOTTED + 3)
        written = write_gzip(io.BytesIO(data), folder / "a.tar.gz")
        assert gzip.decompress((folder / "a.tar.gz").read_bytes()) == data
        assert written.sha256 == streams.file_sha256(folder / "a.tar.gz")
        assert b"".join(streams.read_gzip(folder / "a.tar.gz")) == data
    finally:
        shutil.rmtree(folder)
