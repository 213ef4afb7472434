"""The restore's upload to the local engine on our own unix-socket connection (archives.put_archive_unix):
the files land in a real volume as archived, and a refused upload is a clear error, not a hang."""

from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from app.backups.streams import file_list
from app.backups.streams import read_gzip
from app.backups.streams import write_gzip
from app.engine import Engine
from app.engine import archives
from app.engine.archives import ARCHIVE_ROOT
from app.errors import NotFound
from tests.conftest import PREFIX

pytestmark = pytest.mark.docker


def sample_tar() -> bytes:
    """A tar like a volume's: a folder, files of odd sizes (one over many upload pieces), a symlink, modes and owners."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes | None = None, mode: int = 0o644, uid: int = 0, link: str = "") -> None:
            info = tarfile.TarInfo(f"{ARCHIVE_ROOT}/{name}" if name else ARCHIVE_ROOT)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 1_700_000_000
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        add("", mode=0o755)
        add("db", mode=0o700, uid=999)
        add("db/big.bin", os.urandom(5 * 1024 * 1024 + 7), mode=0o600, uid=999)
        add("db/empty", b"")
        add("notes.txt", b"hello\n" * 1000, mode=0o640, uid=33)
        add("current", mode=0o777, link="db/big.bin")
    return buf.getvalue()


def test_restore_into_a_volume_over_the_socket(busybox_image, tmp_path):
    engine = Engine()
    assert engine.socket_path() is not None  # the local engine: the upload takes our own connection
    archive = tmp_path / "vol.tar.gz"
    write_gzip(iter([sample_tar()]), archive)
    volume = f"{PREFIX}-upload"
    engine.call(lambda c: c.api.create_volume(volume))
    try:
        archives.write_volume(engine, busybox_image, volume, read_gzip(archive))
        restored = file_list(archives.read_volume(engine, busybox_image, volume))
        assert sorted(restored) == sorted(file_list(read_gzip(archive)))  # the engine lists by name
        assert any(line.startswith("f db/big.bin 600 999:999 5242887 ") for line in restored)
    finally:
        engine.call(lambda c: c.api.remove_volume(volume, force=True))
        engine.close()


def test_refused_upload_is_not_found_and_does_not_hang():
    engine = Engine()
    sent = []

    def pieces():  # 64 MiB offered: far more than the engine reads before it answers
        piece = memoryview(os.urandom(256 * 1024))
        for _ in range(256):
            sent.append(len(piece))
            yield piece

    started = time.monotonic()
    with pytest.raises(NotFound) as caught:
        archives.put_archive(engine, f"{PREFIX}-no-such-container", "/", pieces())
    assert time.monotonic() - started < 30
    assert "No such container" in caught.value.detail
    assert sum(sent) < 64 * 1024 * 1024  # it stopped sending once the engine had answered
    engine.close()
