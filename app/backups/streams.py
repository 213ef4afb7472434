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
SAMPLE = 16 * 1024  # each block's first 16 KiB are test-compressed first (64 KiB cost 7x more) ...
INCOMPRESSIBLE = 0.97  # ... and if they shrink less than 3%, the block is stored as is
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, unknown OS
STORED_MAX = 0xFFFF  # a stored deflate block holds at most 65535 bytes
STORED_FULL = b"\x00\xff\xff\x00\x00"  # header of a full, not final stored block: BTYPE 00, LEN, NLEN
STORED_END = b"\x01\x00\x00\xff\xff"  # an empty final stored block ends a member


def stored_blocks(data, head: bytes = b"") -> bytes:
    """head, then data framed as (not final) stored deflate blocks: what zlib level 0 writes, without
    running the data through its window (one copy at memory speed instead of ~1 GB/s)."""
    view = memoryview(data)
    pieces: list = [head]
    for i in range(0, len(view), STORED_MAX):
        part = view[i : i + STORED_MAX]
        n = len(part)
        pieces.append(STORED_FULL if n == STORED_MAX else struct.pack("<BHH", 0, n, n ^ 0xFFFF))
        pieces.append(part)
    return b"".join(pieces)


class _Members:
    """Writes a gzip file as a series of members of about BLOCK input bytes each (gzip, tar and Python
    read them as one stream). A member whose first chunk does not compress (media, already compressed
    files) is written as stored deflate blocks framed here, so a backup of such data runs at disk
    speed instead of the compressor's; the others go through zlib at `level`."""

    def __init__(self, out: _Counting, level: int) -> None:
        self.out = out
        self.level = level
        self.count = 0
        self._deflate = None
        self._stored = False
        self._open = False
        self._crc = 0
        self._size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._open:
            sample = data[:SAMPLE]
            self._stored = len(sample) >= 4096 and len(zlib.compress(sample, self.level)) > INCOMPRESSIBLE * len(sample)
            self._deflate = None if self._stored else zlib.compressobj(self.level, zlib.DEFLATED, -15)
            self._open = True
            if self._stored:  # header and blocks in one piece
                self.out.write(stored_blocks(data, GZIP_HEADER))
            else:
                self.out.write(GZIP_HEADER)
        elif self._stored:
            self.out.write(stored_blocks(data))
        self.count += len(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        if not self._stored:
            out = self._deflate.compress(data)
            if out:
                self.out.write(out)
        if self._size >= BLOCK:
            self._end()

    def _end(self) -> None:
        tail = STORED_END if self._stored else self._deflate.flush()
        self.out.write(tail + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self._deflate, self._open, self._crc, self._size = None, False, 0, 0

    def close(self) -> None:
        if not self._open and not self.count:  # an empty stream is still a valid gzip file
            self.out.write(GZIP_HEADER)
            self._stored = self._open = True
        if self._open:
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


def prefetch(chunks: Iterable[bytes], depth: int = 8, name: str = "backup-read") -> Iterator[bytes]:
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
                if stop.is_set():  # the consumer gave up: the source's own cleanup runs now, here
                    close = getattr(chunks, "close", None)
                    if close:
                        close()
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    worker = threading.Thread(target=produce, name=name, daemon=True)
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


class _Damaged(Exception):
    pass


class _Truncated(Exception):
    pass


class _FileBytes:
    """A file read in large blocks and handed out as views (no copies of ours)."""

    def __init__(self, f: BinaryIO, block: int) -> None:
        self.f = f
        self.block = block
        self.buf = memoryview(b"")

    def view(self) -> memoryview:
        """What is buffered, refilled when empty; empty at the end of the file."""
        if not self.buf:
            self.buf = memoryview(self.f.read(self.block))
        return self.buf

    def take(self, n: int) -> list[memoryview]:
        """The next n bytes as views (more than one when they span blocks); _Truncated if the file ends first."""
        views = []
        while n:
            v = self.view()
            if not v:
                raise _Truncated
            views.append(v[:n])
            self.buf = v[len(views[-1]) :]
            n -= len(views[-1])
        return views

    def take_bytes(self, n: int) -> bytes:
        return b"".join(self.take(n))


WINDOW = 32 * 1024  # deflate's back-references reach at most this far
FEED = 256 * 1024  # compressed input handed to zlib at a time (what it leaves over is copied each time)


class _GzipReader:
    """Members made of stored blocks (what _Members writes for incompressible data) are read by slicing
    the file's blocks, checking LEN/NLEN and the CRC ourselves: no inflate pass over the data (which
    costs ~1 s/GB even for stored blocks). Any other block (compressed, or a header with flags) goes to
    zlib from that point, with the member's last 32 KiB as its dictionary."""

    def __init__(self, src: _FileBytes, out_size: int) -> None:
        self.src = src
        self.out_size = out_size
        self.pending: list = []  # output views/bytes not yet handed out
        self.pending_size = 0
        self.last = b""  # the last output handed out (the dictionary's source when zlib takes over)

    def _emit(self, piece) -> Iterator[bytes]:
        self.pending.append(piece)
        self.pending_size += len(piece)
        if self.pending_size >= self.out_size:
            yield self._flush()

    def _flush(self) -> bytes:
        out = b"".join(self.pending)
        self.pending, self.pending_size, self.last = [], 0, out or self.last
        return out

    def chunks(self) -> Iterator[bytes]:
        src = self.src
        while src.view():
            header = src.take_bytes(10)
            if header[:3] != GZIP_HEADER[:3]:
                raise _Damaged("not a gzip member")
            if header[3]:  # optional fields (name, comment, ...): zlib reads the whole member, CRC included
                yield from self._inflate(zlib.decompressobj(31), header)
            else:
                yield from self._member()
        if self.pending_size:
            yield self._flush()

    def _member(self) -> Iterator[bytes]:
        crc = size = 0
        src = self.src
        while True:
            v = src.view()
            if not v:
                raise _Truncated
            if (v[0] >> 1) & 3:  # a compressed block: zlib takes over at this (byte-aligned) boundary
                window = (self.last + b"".join(self.pending))[-min(size, WINDOW) :] if size else b""
                inflate = zlib.decompressobj(-15, zdict=window) if window else zlib.decompressobj(-15)
                crc, size = yield from self._inflate(inflate, b"", crc, size)
                break
            head = src.take_bytes(5)
            n, check = struct.unpack("<HH", head[1:])
            if n ^ check != 0xFFFF:
                raise _Damaged("invalid stored block lengths")
            for part in src.take(n):
                crc = zlib.crc32(part, crc)
                size += len(part)
                yield from self._emit(part)
            if head[0] & 1:
                break
        want_crc, want_size = struct.unpack("<II", src.take_bytes(8))
        if want_crc != crc or want_size != size & 0xFFFFFFFF:
            raise _Damaged("CRC or length check failed")

    def _inflate(self, inflate, first: bytes, crc: int = 0, size: int = 0):
        """Feed zlib `first`, then the file until its stream ends (the bytes it did not use stay in the
        file's buffer); the output's CRC and size, continued from crc and size, are returned."""
        src = self.src
        while not inflate.eof:
            if first:
                data, from_file = first, False
            else:
                v = src.view()  # empty at the file's end: zlib may still hold output past max_length
                data, from_file = v[:FEED], True
            out = inflate.decompress(data, self.out_size)  # bounded: a small input may inflate a lot
            # what zlib did not use: past the stream's end, or past max_length (unconsumed_tail is
            # not reset at the end in every Python version, so it is read only before the end)
            left = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
            if from_file:
                src.buf = v[len(data) - len(left) :]
                first = b""
            elif inflate.eof and left:
                raise _Damaged("a member shorter than its header")
            else:
                first = left
            if not data and not out and not inflate.eof:
                raise _Truncated
            if out:
                crc = zlib.crc32(out, crc)
                size += len(out)
                yield from self._emit(out)
        return crc, size


def read_gzip(path: Path, ahead: bool = True) -> Iterator[bytes]:
    """The uncompressed bytes of a (multi-member) gzip file, chunk by chunk, decoded in a thread of
    its own while the caller uses them (ahead); each member's CRC and size are checked, and a file
    cut short is an error."""
    chunks = _read_gzip(path)
    return prefetch(chunks, name="gzip-read") if ahead else chunks


def _read_gzip(path: Path) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        try:
            yield from _GzipReader(_FileBytes(f, BLOCK), CHUNK).chunks()
        except (_Damaged, zlib.error) as e:
            raise InvalidInput(f"The archive {path.name} is damaged ({e}).") from None
        except _Truncated:
            raise InvalidInput(f"The archive {path.name} ends in the middle (a truncated file).") from None


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
