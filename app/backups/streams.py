"""Tar streams in and out, never held in memory: gzip files with their sha256, folder tars, file lists.

A folder is tarred by a thread into a pipe, so volumes (engine chunks) and folders are the same
kind of thing: an iterator of uncompressed tar bytes whose entries sit under ARCHIVE_ROOT/.

Throughput (bench/bench_backup.py against docker cp): the archive is a standard multi-member gzip,
but incompressible members are stored deflate blocks framed by us, read and written without zlib;
a volume's stream is read into reused buffers laid out as such members (no allocation, so no fresh
pages, per block); archives are written and read with O_DIRECT where the file system takes it; and
reading, hashing and writing run in threads of their own (crc32, sha256 and I/O release the GIL).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import hashlib
import io
import mmap
import os
import queue
import re
import shutil
import stat
import struct
import tarfile
import threading
import zlib
from collections.abc import Iterable
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
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


ALIGN = 4096  # O_DIRECT wants buffers, sizes and offsets in whole blocks of the device
STAGE = 4 * 1024 * 1024


LOCAL_DISK_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "bcachefs", "zfs"})


def local_disk(path: Path) -> bool:
    """Whether path lies on a local disk file system (the mount that holds it, from mountinfo). O_DIRECT
    is used only there: on NFS/SMB (a NAS backups folder) it makes every write a synchronous round
    trip, FUSE often refuses or ignores it, and tmpfs has no disk to go to."""
    try:
        target = os.path.realpath(path)
        best, kind = "", ""
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, right.split()[0]
    except OSError:
        return False
    return kind in LOCAL_DISK_FS


class _DirectFile:
    """Writes to an fd with O_DIRECT when the file system takes it: the data goes from one reused,
    aligned staging buffer to the disk, instead of being copied into fresh page-cache pages (on the
    2-core host that copy cost more CPU than everything else the backup does, and an archive written
    once should not push the services' files out of the cache). Whatever is not a whole block at the
    end is written the ordinary way; a file system without O_DIRECT is written the ordinary way."""

    def __init__(self, fd: int, direct: bool = True) -> None:
        self.fd = fd
        self.direct = direct and hasattr(os, "O_DIRECT")
        if self.direct:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
            except OSError:
                self.direct = False
        self._stage = mmap.mmap(-1, STAGE) if self.direct else None  # page-aligned
        self._fill = 0

    def write(self, data, aligned: bool = False) -> int:
        """Write data; `aligned`: it starts at a page boundary in memory, so when nothing is staged and
        it is whole blocks long, O_DIRECT takes it from where it is."""
        view = memoryview(data).cast("B")
        if aligned and self.direct and not self._fill and len(view) % ALIGN == 0:
            try:
                written = os.write(self.fd, view)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                written = 0
            if written < len(view):  # refused (or cut short): the ordinary way from here on
                self._plain()
                _write_all(self.fd, view[written:])
            return len(view)
        done = 0
        while done < len(view):
            if not self.direct:  # nothing is staged then
                _write_all(self.fd, view[done:])
                break
            k = min(len(view) - done, STAGE - self._fill)
            self._stage[self._fill : self._fill + k] = view[done : done + k]
            self._fill += k
            done += k
            if self._fill == STAGE:
                self._flush()
        return len(view)

    def _flush(self) -> None:
        whole = self._fill - self._fill % ALIGN
        if not whole:
            return
        with memoryview(self._stage) as stage:
            written = 0
            try:
                written = os.write(self.fd, stage[:whole])
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
            if written < whole:  # refused (or cut short): everything staged, and all after, the ordinary way
                self._plain()
                _write_all(self.fd, stage[written : self._fill])
                self._fill = 0
                return
            stage[: self._fill - whole] = stage[whole : self._fill]
        self._fill -= whole

    def _plain(self) -> None:
        if self.direct:
            self.direct = False
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)

    def close(self) -> None:
        """Write what is staged (the last partial block the ordinary way) and fsync."""
        if self._stage is not None:
            self._flush()
            if self._fill:
                self._plain()
                with memoryview(self._stage) as stage:
                    _write_all(self.fd, stage[: self._fill])
                self._fill = 0
            self._stage.close()
            self._stage = None
        os.fsync(self.fd)


class _Counting:
    """A write-only file that hashes and counts what passes to the real file, in a thread of its own
    (sha256 and write release the GIL while the caller compresses); at most `depth` pieces wait."""

    def __init__(self, f: BinaryIO | _DirectFile, depth: int = 16) -> None:
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
    """Compress chunks into path (created 0600, fsynced); sizes and the file's sha256. A source that
    can readinto() (a volume's stream) is read into reused buffers laid out as gzip members."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        out = _DirectFile(fd, direct=local_disk(path))
        if hasattr(chunks, "readinto"):
            written = _write_slotted(chunks, out, level or LEVEL)
        else:
            counting = _Counting(out)
            try:
                members = _Members(counting, level or LEVEL)
                for chunk in prefetch(chunks):
                    members.write(chunk)
                members.close()
            finally:
                counting.finish()
            written = Written(members.count, counting.count, counting.hash.hexdigest())
        out.close()
    finally:
        os.close(fd)
    return written


SLOTS = 64  # stored blocks per member in the slotted layout
SLOT_STEP = 5 + STORED_MAX
# A full stored member is exactly 4 MiB, whole blocks of the disk: O_DIRECT writes it from its own
# (page-aligned) buffer without the staging copy. So its last block holds 279 bytes less.
SLOTTED_SIZE = 4 * 1024 * 1024
MEMBER_DATA = SLOTTED_SIZE - len(GZIP_HEADER) - SLOTS * 5 - len(STORED_END) - 8
POOL = 4  # slotted buffers in flight (reader, framer, writer, one spare): 16 MiB


def _slot(i: int) -> slice:
    start = len(GZIP_HEADER) + i * SLOT_STEP + 5
    return slice(start, start + min(STORED_MAX, MEMBER_DATA - i * STORED_MAX))


def _read_member(readinto, buf: mmap.mmap) -> int:
    """Read into the data slots of buf, in order, until they are full or the source ends; the number
    of bytes. Nothing else happens in the reading thread: it is the one stage that holds the GIL most
    (http.client decodes the engine's chunks in Python), so it is kept short."""
    view = memoryview(buf)
    total = 0
    for i in range(SLOTS):
        slot = view[_slot(i)]
        got = 0
        while got < len(slot) and (n := readinto(slot[got:])):
            got += n
        total += got
        if got < len(slot):
            break
    return total


def _stored_crc(buf: mmap.mmap, n: int, level: int) -> int | None:
    """The CRC of the member's data if it is to be stored (its first slot's sample does not compress),
    None if it is to be compressed."""
    view = memoryview(buf)
    sample = view[_slot(0)][: min(n, SAMPLE)]
    if len(sample) >= 4096 and len(zlib.compress(sample, level)) <= INCOMPRESSIBLE * len(sample):
        return None
    crc = 0
    for i in range((n + STORED_MAX - 1) // STORED_MAX):
        crc = zlib.crc32(view[_slot(i)][: n - i * STORED_MAX], crc)
    return crc


def _frame_stored(buf: mmap.mmap, n: int, crc: int) -> memoryview:
    """Turn a slotted buffer holding n data bytes into one whole stored gzip member, in place: a few
    header bytes written around the data."""
    view = memoryview(buf)
    view[: len(GZIP_HEADER)] = GZIP_HEADER
    pos, left = len(GZIP_HEADER), n
    while left:
        k = min(STORED_MAX, left)
        view[pos : pos + 5] = STORED_FULL if k == STORED_MAX else struct.pack("<BHH", 0, k, k ^ 0xFFFF)
        pos, left = pos + 5 + k, left - k
    view[pos : pos + 13] = STORED_END + struct.pack("<II", crc, n)
    return view[: pos + 13]


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_slotted(src, out: _DirectFile, level: int) -> Written:
    """Threads, buffers passed along and reused (no allocation per block): one reads the source into a
    buffer's slots, this one takes the CRC and frames it as a stored member (or has it compressed)
    and hashes it, one writes it and hands the buffer back. crc32, sha256, deflate, socket reads and
    writes release the GIL."""
    free: queue.Queue = queue.Queue()
    for _ in range(POOL):
        free.put(mmap.mmap(-1, SLOTTED_SIZE))  # page-aligned
    full: queue.Queue = queue.Queue()
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            first = True
            while not stop.is_set():
                try:
                    buf = free.get(timeout=0.5)
                except queue.Empty:
                    continue
                n = _read_member(src.readinto, buf)
                if n or first:  # an empty source still makes one (empty) member
                    full.put((buf, n))
                first = False
                if n < MEMBER_DATA:
                    break
            full.put(done)
        except BaseException as e:  # noqa: BLE001 - raised in the framing thread
            full.put(e)

    writes: queue.Queue = queue.Queue()
    failed: list[BaseException] = []

    def write() -> None:
        while (item := writes.get()) is not None:
            data, buf = item
            if not failed:
                try:
                    out.write(data, aligned=buf is not None)  # a stored member: from its buffer's start
                except BaseException as e:  # noqa: BLE001 - raised in the framing thread
                    failed.append(e)
            if buf is not None:
                free.put(buf)

    reader = threading.Thread(target=read, name="backup-read", daemon=True)
    writer = threading.Thread(target=write, name="backup-write", daemon=True)
    reader.start()
    writer.start()

    def deflate(buf: mmap.mmap, n: int) -> tuple[bytes, None]:
        view, crc, pieces = memoryview(buf), 0, [GZIP_HEADER]
        z = zlib.compressobj(level, zlib.DEFLATED, -15)
        for i in range((n + STORED_MAX - 1) // STORED_MAX):
            data = view[_slot(i)][: n - i * STORED_MAX]
            crc = zlib.crc32(data, crc)
            pieces.append(z.compress(data))
        free.put(buf)
        return b"".join([*pieces, z.flush(), struct.pack("<II", crc, n)]), None

    sha, tar_bytes, file_bytes = hashlib.sha256(), 0, 0
    # Members in file order: stored ones framed here, compressed ones by a pool of two (deflate
    # releases the GIL, so two cores compress while this one keeps the order).
    pending: collections.deque[Future] = collections.deque()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="backup-deflate")

    def hand_on(wait: bool) -> None:
        nonlocal file_bytes
        while pending and (wait or pending[0].done() or len(pending) > 2):
            data, buf = pending.popleft().result()
            sha.update(data)
            file_bytes += len(data)
            writes.put((data, buf))

    try:
        while (item := full.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            if failed:
                raise failed[0]
            buf, n = item
            tar_bytes += n
            crc = _stored_crc(buf, n, level)
            if crc is None:
                pending.append(pool.submit(deflate, buf, n))
            else:
                ready: Future = Future()
                ready.set_result((_frame_stored(buf, n, crc), buf))
                pending.append(ready)
            hand_on(wait=False)
        hand_on(wait=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stop.set()
        writes.put(None)
        writer.join()
        reader.join(timeout=5)
        close = getattr(src, "close", None)  # a volume's stream: its helper container goes now
        if close:
            close()
    if failed:
        raise failed[0]
    return Written(tar_bytes, file_bytes, sha.hexdigest())


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
    """The file's sha256, read (O_DIRECT where it may) in a thread while this one hashes."""
    h = hashlib.sha256()
    f = _BlockFile(path, ring=4)  # a block is reused after 3 more reads: 2 queued, 1 being read
    try:
        for block in prefetch(iter(f.read, b""), depth=2, name="sha-read"):
            h.update(block)
    finally:
        f.close()
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


class _BlockFile:
    """A file read in blocks into a few reused, page-aligned buffers, with O_DIRECT when the file system
    takes it: an archive read once goes from the disk to our buffer, not through fresh page-cache pages
    and a copy (nor does it push the services' files out of the cache). A block stays valid until
    `ring - 1` further reads."""

    def __init__(self, path: Path, block: int = BLOCK, ring: int = 3) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.direct = hasattr(os, "O_DIRECT") and local_disk(path)
        if self.direct:
            try:
                fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | os.O_DIRECT)
            except OSError:
                self.direct = False
        self._ring = [mmap.mmap(-1, block) for _ in range(ring)]
        self._next = 0

    def read(self) -> memoryview:
        """The next block (shorter at the end of the file, empty after it)."""
        view = memoryview(self._ring[self._next])
        self._next = (self._next + 1) % len(self._ring)
        got = 0
        while got < len(view):
            try:
                n = os.readv(self.fd, [view[got:]])
            except OSError as e:
                if e.errno != errno.EINVAL or not self.direct:
                    raise
                self.direct = False  # not on this file system after all (or an unaligned rest)
                fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
                continue
            if not n:
                break
            got += n
        return view[:got]

    def close(self) -> None:
        os.close(self.fd)  # the buffers go with the last view of them


class _FileBytes:
    """A file read in large blocks and handed out as views (no copies of ours)."""

    def __init__(self, f, block: int) -> None:
        self.read = f.read if isinstance(f, _BlockFile) else lambda: f.read(block)
        self.buf = memoryview(b"")

    def view(self) -> memoryview:
        """What is buffered, refilled when empty; empty at the end of the file."""
        if not self.buf:
            self.buf = memoryview(self.read())
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
# What a restore hands on at a time. To a local engine each piece goes out as it is (archives.put_archive_unix,
# sendmsg); 256 and 512 KiB pieces were no faster there (1 GB, 3 alternating rounds, load 4: 484-574 MB/s
# at 128 KiB, 484-512 at 256, 500-506 at 512) and took 2-3x the page faults (the joined piece is fresh
# memory). Through the SDK (remote engines) urllib3 still copies each piece into a new bytes object: small
# pieces keep that copy in malloc's free lists (1 MiB pieces cost ~300 page faults per MiB and twice the CPU).
OUT_CHUNK = 2 * STORED_MAX  # two stored blocks


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
    if not ahead:
        return chunks
    return (chunk for batch in prefetch(_batches(chunks, 8), depth=4, name="gzip-read") for chunk in batch)


def _batches(chunks: Iterable[bytes], n: int) -> Iterator[list[bytes]]:
    """Chunks in lists of n: one hand-over between threads per list instead of per chunk."""
    batch = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_gzip(path: Path) -> Iterator[bytes]:
    f = _BlockFile(path)
    try:
        yield from _GzipReader(_FileBytes(f, BLOCK), OUT_CHUNK).chunks()
    except (_Damaged, zlib.error) as e:
        raise InvalidInput(f"The archive {path.name} is damaged ({e}).") from None
    except _Truncated:
        raise InvalidInput(f"The archive {path.name} ends in the middle (a truncated file).") from None
    finally:
        f.close()


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
