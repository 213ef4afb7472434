"""Tar streams in and out, never held in memory: gzip files with their sha256, folder tars, file lists.

A folder is tarred by a thread into a pipe, so volumes (engine chunks) and folders are the same
kind of thing: an iterator of uncompressed tar bytes whose entries sit under ARCHIVE_ROOT/.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import shutil
import stat
import struct
import tarfile
import threading
import zlib
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from pathlib import PurePosixPath
from typing import BinaryIO

from app.engine.archives import ARCHIVE_ROOT
from app.errors import InvalidInput

CHUNK = 1024 * 1024
LEVEL = 1  # gzip level: data is often already compressed; level 1 keeps pace with the disk


@dataclass(frozen=True)
class Written:
    tar_bytes: int
    file_bytes: int
    sha256: str


class _Counting:
    """A write-only file that hashes and counts what passes to the real file, in a thread of its own
    (sha256 and write release the GIL while the caller compresses); at most `depth` pieces wait."""

    def __init__(self, f: BinaryIO, depth: int = 16) -> None:
        self.f = f
        self.hash = hashlib.sha256()
        self.count = 0
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._drain, name="backup-write", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (piece := self._q.get()) is not None:
            if self._error:
                continue
            try:
                self.hash.update(piece)
                self.f.write(piece)
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                self._error.append(e)

    def write(self, b: bytes) -> int:
        if self._error:
            raise self._error[0]
        self.count += len(b)
        self._q.put(b)
        return len(b)

    def finish(self) -> None:
        """Wait for every piece to be written; the writer's error, if any, is raised here."""
        self._q.put(None)
        self._thread.join()
        if self._error:
            raise self._error[0]


BLOCK = 4 * 1024 * 1024  # one gzip member per block: memory stays a few blocks whatever the size
SAMPLE = 64 * 1024  # each block's first 64 KiB are test-compressed first ...
INCOMPRESSIBLE = 0.97  # ... and if they shrink less than 3%, the block is stored as is
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, unknown OS


class _Members:
    """Writes a gzip file as a series of members of about BLOCK input bytes each (gzip, tar and Python
    read them as one stream). A member whose first chunk does not compress (media, already compressed
    files) is stored at level 0, so a backup of such data runs at disk speed instead of the
    compressor's. Chunks go straight into the deflater: no copy of ours."""

    def __init__(self, out: _Counting, level: int) -> None:
        self.out = out
        self.level = level
        self.count = 0
        self._deflate = None
        self._crc = 0
        self._size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._deflate is None:
            sample = data[:SAMPLE]
            stored = len(sample) >= 4096 and len(zlib.compress(sample, self.level)) > INCOMPRESSIBLE * len(sample)
            self._deflate = zlib.compressobj(0 if stored else self.level, zlib.DEFLATED, -15)
            self.out.write(GZIP_HEADER)
        self.count += len(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._deflate.compress(data)
        if out:
            self.out.write(out)
        if self._size >= BLOCK:
            self._end()

    def _end(self) -> None:
        self.out.write(self._deflate.flush())
        self.out.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self._deflate, self._crc, self._size = None, 0, 0

    def close(self) -> None:
        if self._deflate is None and not self.count:  # an empty stream is still a valid gzip file
            self._deflate = zlib.compressobj(self.level, zlib.DEFLATED, -15)
            self.out.write(GZIP_HEADER)
        if self._deflate is not None:
            self._end()


def write_gzip(chunks: Iterable[bytes], path: Path, level: int | None = None) -> Written:
    """Compress chunks into path (created 0600, fsynced); sizes and the file's sha256."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        counting = _Counting(raw)
        try:
            members = _Members(counting, level or LEVEL)
            for chunk in prefetch(chunks):
                members.write(chunk)
            members.close()
        finally:
            counting.finish()
        raw.flush()
        os.fsync(raw.fileno())
    return Written(members.count, counting.count, counting.hash.hexdigest())


def prefetch(chunks: Iterable[bytes], depth: int = 8) -> Iterator[bytes]:
    """Read the source in a thread while this one compresses and writes (socket reads, zlib and
    sha256 all release the GIL); at most `depth` chunks wait in between, so memory stays bounded.
    The source's error is raised here, in order."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        q.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    worker = threading.Thread(target=produce, name="backup-read", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


class IterReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for tarfile's stream mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def read_folder(path: Path) -> Iterator[bytes]:
    """The folder as an uncompressed tar under ARCHIVE_ROOT/ (owners, modes, links kept), streamed."""
    if not path.is_dir():
        raise InvalidInput(f"The folder {path} is not reachable from Stackpilot.")
    rfd, wfd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(wfd, "wb", buffering=CHUNK) as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                tar.add(str(path), arcname=ARCHIVE_ROOT, recursive=True)
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            failure.append(e)

    worker = threading.Thread(target=produce, name="tar-folder", daemon=True)
    worker.start()
    with os.fdopen(rfd, "rb", buffering=0) as src:
        while block := src.read(CHUNK):
            yield block
    worker.join()
    if failure:
        raise failure[0]


def read_gzip(path: Path) -> Iterator[bytes]:
    """The uncompressed bytes of a (multi-member) gzip file, chunk by chunk; zlib checks each
    member's CRC and size, and a file cut short is an error."""
    with open(path, "rb") as f:
        inflate, fed, pending = zlib.decompressobj(31), False, b""
        while True:
            data = pending or f.read(CHUNK)
            pending = b""
            if not data:
                break
            fed = True
            try:
                out = inflate.decompress(data)
            except zlib.error as e:
                raise InvalidInput(f"The archive {path.name} is damaged ({e}).") from None
            if out:
                yield out
            if inflate.eof:
                pending = inflate.unused_data
                inflate, fed = zlib.decompressobj(31), False
        if fed and not inflate.eof:
            raise InvalidInput(f"The archive {path.name} ends in the middle (a truncated file).")


def _entry_name(name: str) -> str | None:
    """The path inside the mount for a tar entry name; None for the mount's own root."""
    parts = PurePosixPath(name.lstrip("./") if name.startswith("./") else name).parts
    if not parts or parts[0] != ARCHIVE_ROOT:
        raise InvalidInput(f"The archive holds an entry outside its data folder: {name[:200]!r}.")
    rest = parts[1:]
    if any(p in ("..", "") for p in rest) or name.startswith("/"):
        raise InvalidInput(f"The archive holds an unsafe path: {name[:200]!r}.")
    return "/".join(rest) or None


def file_list(chunks: Iterable[bytes]) -> list[str]:
    """One line per entry (type, path, mode, owner, size, content sha256 or link target), in tar order:
    two copies of the same data give the same list, whatever their mtimes."""
    lines = []
    with tarfile.open(fileobj=io.BufferedReader(IterReader(chunks), CHUNK), mode="r|") as tar:
        for m in tar:
            path = _entry_name(m.name) or "."
            head = f"{path} {stat.S_IMODE(m.mode):o} {m.uid}:{m.gid}"
            if m.isreg():
                h = hashlib.sha256()
                f = tar.extractfile(m)
                while block := f.read(CHUNK):
                    h.update(block)
                lines.append(f"f {head} {m.size} {h.hexdigest()}")
            elif m.islnk():
                lines.append(f"h {path} -> {_entry_name(m.linkname)}")
            elif m.issym():
                lines.append(f"l {head} -> {m.linkname}")
            elif m.isdir():
                lines.append(f"d {head}")
            else:
                lines.append(f"o {head} {m.type!r}")
    return lines


def empty_folder(path: Path) -> None:
    """Remove everything inside path (the folder itself stays: it may be a mount point)."""
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def extract_to_folder(chunks: Iterable[bytes], dest: Path) -> None:
    """Write an archive into dest: names checked (nothing outside dest, nothing through a symlink of
    the archive), owners (when we may), modes and links kept."""
    dest = dest.resolve()
    links: set[str] = set()
    with tarfile.open(fileobj=io.BufferedReader(IterReader(chunks), CHUNK), mode="r|") as tar:
        for m in tar:
            rel = _entry_name(m.name)
            if rel is not None:
                parents = PurePosixPath(rel).parents
                if any(str(p) in links for p in parents if str(p) != "."):
                    raise InvalidInput(f"The archive writes through a link it made: {m.name[:200]!r}.")
            if m.islnk():
                target = _entry_name(m.linkname)
                if target is None:
                    raise InvalidInput(f"The archive links to its root: {m.name[:200]!r}.")
                m.linkname = target
            if m.issym():
                links.add(rel or ".")
            m.name = rel or "."
            tar.extract(m, str(dest), set_attrs=True, numeric_owner=True, filter="fully_trusted")
