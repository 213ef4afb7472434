"""The archive reader's own stored-block path and its hand-over to zlib: every kind of gzip member we or
other tools write reads back the same, wherever the file's read blocks happen to cut it."""

from __future__ import annotations

import gzip
import io
import os
import struct
import subprocess
import zlib

import pytest

from app.backups import streams
from app.backups.streams import GZIP_HEADER
from app.backups.streams import read_gzip
from app.backups.streams import stored_blocks
from app.errors import InvalidInput

NOISE = os.urandom(300_000)
TEXT = b"INSERT INTO t VALUES (42, 'some text');\n" * 8_000


def member(deflated: bytes, data: bytes) -> bytes:
    return GZIP_HEADER + deflated + struct.pack("<II", zlib.crc32(data), len(data))


def raw_deflate(data: bytes, level: int, zdict: bytes = b"") -> bytes:
    z = (
        zlib.compressobj(level, zlib.DEFLATED, -15, zdict=zdict)
        if zdict
        else zlib.compressobj(level, zlib.DEFLATED, -15)
    )
    return z.compress(data) + z.flush()


def stored_then_compressed() -> tuple[bytes, bytes]:
    """One member: stored blocks, then a compressed stream whose back-references reach into them."""
    head = NOISE[:70_000] + TEXT[:20_000]
    rest = TEXT[:50_000] + NOISE[:1000]
    deflated = stored_blocks(head) + raw_deflate(rest, 6, zdict=head[-32 * 1024 :])
    return member(deflated, head + rest), head + rest


def kinds() -> list[tuple[str, bytes, bytes]]:
    cases = [
        ("zlib level 0 (older archives)", member(raw_deflate(NOISE, 0), NOISE), NOISE),
        ("gzip module, level 6", gzip.compress(TEXT + NOISE, mtime=0), TEXT + NOISE),
        ("the gzip command", subprocess.run(["gzip", "-c", "-n"], input=TEXT, capture_output=True).stdout, TEXT),
        ("stored then compressed", *stored_then_compressed()),
        ("empty stored member", GZIP_HEADER + streams.STORED_END + struct.pack("<II", 0, 0), b""),
    ]
    named = gzip.GzipFile(filename="dump.sql", mode="wb", fileobj=(buf := io.BytesIO()), mtime=0)
    named.write(TEXT)
    named.close()
    cases.append(("gzip header with FNAME", buf.getvalue(), TEXT))
    return cases


def decode(raw: bytes, block: int, out: int) -> bytes:
    reader = streams._GzipReader(streams._FileBytes(io.BytesIO(raw), block), out)
    return b"".join(reader.chunks())


@pytest.mark.parametrize("block,out", [(7, 1000), (4099, 65536), (1 << 20, 1 << 20)])
def test_every_kind_of_member_reads_back_whatever_the_block_size(block, out):
    cases = kinds()
    whole = b"".join(raw for _, raw, _ in cases)
    assert gzip.decompress(whole) == b"".join(data for _, _, data in cases)  # the fixtures are valid gzip
    for name, raw, data in cases:
        assert decode(raw, block, out) == data, name
    assert decode(whole, block, out) == b"".join(data for _, _, data in cases)


def test_damage_in_each_part_of_a_stored_member_is_found(tmp_path):
    raw = member(stored_blocks(NOISE) + streams.STORED_END, NOISE)
    assert decode(raw, 4099, 65536) == NOISE
    first_len = 10 + 1  # the first stored block's LEN
    for where, what in [(3, "damaged"), (first_len, "damaged"), (5000, "damaged"), (len(raw) - 6, "damaged")]:
        bad = bytearray(raw)
        bad[where] ^= 0x40
        path = tmp_path / f"bad{where}.tar.gz"
        path.write_bytes(bytes(bad))
        with pytest.raises(InvalidInput, match=what):
            b"".join(read_gzip(path))
    for cut in (5, 12, 70_000, len(raw) - 3):
        path = tmp_path / f"cut{cut}.tar.gz"
        path.write_bytes(raw[:cut])
        with pytest.raises(InvalidInput, match="ends in the middle"):
            b"".join(read_gzip(path))
    path = tmp_path / "tail.tar.gz"
    path.write_bytes(raw + b"garbage after the last member")
    with pytest.raises(InvalidInput, match="damaged"):
        b"".join(read_gzip(path))


def test_a_reader_given_up_halfway_stops_its_thread(tmp_path):
    path = tmp_path / "a.tar.gz"
    streams.write_gzip(iter([NOISE] * 40), path)
    chunks = read_gzip(path)
    assert len(next(chunks)) >= streams.OUT_CHUNK
    chunks.close()  # the consumer (an upload) failed
    assert not [t for t in __import__("threading").enumerate() if t.name == "gzip-read"]
