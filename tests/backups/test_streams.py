"""The archive writer and reader: gzip members (stored when the data does not compress), standard tools
read them, a cut or damaged file is said in words."""

from __future__ import annotations

import gzip
import os
import subprocess

import pytest

from app.backups import jobs
from app.backups.jobs import StackData
from app.backups.store import BackupStore
from app.backups.store import Entry
from app.backups.streams import file_sha256
from app.backups.streams import read_gzip
from app.backups.streams import write_gzip
from app.errors import InvalidInput


def test_members_round_trip_and_damage(tmp_path):
    noise, text = os.urandom(9 * 1024 * 1024), b"INSERT INTO t VALUES (42);\n" * 300_000
    chunks = [noise[i : i + 1_000_000] for i in range(0, len(noise), 1_000_000)] + [b"", text, b"z"]
    path = tmp_path / "a.tar.gz"
    written = write_gzip(iter(chunks), path)
    whole = b"".join(chunks)
    assert written.tar_bytes == len(whole) and written.sha256 == file_sha256(path)
    assert written.file_bytes < len(noise) * 1.001 + len(text) / 10  # noise stored, text compressed
    assert b"".join(read_gzip(path)) == whole
    assert gzip.open(path).read() == whole
    assert subprocess.run(["gzip", "-t", str(path)]).returncode == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):  # never over an existing file
        write_gzip([b"x"], path)

    empty = tmp_path / "empty.tar.gz"
    write_gzip([], empty)
    assert b"".join(read_gzip(empty)) == b"" and gzip.open(empty).read() == b""

    raw = path.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(raw[:-100])
    with pytest.raises(InvalidInput, match="ends in the middle"):
        b"".join(read_gzip(tmp_path / "cut.tar.gz"))
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.tar.gz").write_bytes(bytes(damaged))
    with pytest.raises(InvalidInput, match="damaged"):
        b"".join(read_gzip(tmp_path / "bad.tar.gz"))


def test_restore_refuses_folders_nested_in_another_services_folder_and_our_own_service(tmp_path):
    """Emptying `.` for one service would wipe `./db-data` under a running database; and Stackpilot
    cannot stop itself to restore its own data."""
    config = {
        "name": "p",
        "services": {
            "app": {"volumes": [{"type": "bind", "source": str(tmp_path), "target": "/app"}]},
            "db": {"volumes": [{"type": "bind", "source": str(tmp_path / "db-data"), "target": "/var/lib/db"}]},
            "cache": {"volumes": [{"type": "volume", "source": "cache", "target": "/data"}]},
        },
    }
    data = StackData(
        engine=None, project="p", key="p", directory=None, config=config, images={}, labels={}, own="stackpilot"
    )
    parent = Entry(service="app", kind="bind", name=".", source=str(tmp_path), target="/app", file="a.tar.gz")
    with pytest.raises(InvalidInput, match="also used by db"):
        jobs._mine_only(data, "app", parent)
    child = Entry(
        service="db",
        kind="bind",
        name="./db-data",
        source=str(tmp_path / "db-data"),
        target="/var/lib/db",
        file="d.tar.gz",
    )
    with pytest.raises(InvalidInput, match="also used by app"):
        jobs._mine_only(data, "db", child)
    jobs._mine_only(
        data, "cache", Entry(service="cache", kind="volume", name="cache", source="p_cache", target="/data", file="c")
    )
    assert not jobs._overlaps("bind", str(tmp_path / "a"), "bind", str(tmp_path / "ab"))  # siblings, not nested
    plan = jobs.RestorePlan("id", "stackpilot", (parent,))
    with pytest.raises(InvalidInput, match="Stackpilot itself"):
        jobs.restore(data, None, plan)


def test_a_stack_backup_skips_stackpilots_own_service(tmp_path):
    """Stopping our own container for the copy would end the job half way (and the UI with it)."""
    config = {
        "name": "p",
        "services": {"stackpilot": {"volumes": [{"type": "volume", "source": "data", "target": "/data"}]}},
    }
    data = StackData(
        engine=None, project="p", key="p", directory=None, config=config, images={}, labels={}, own="stackpilot"
    )
    manifest = jobs.backup(data, BackupStore(tmp_path / "backups", "p"), ["stackpilot"], "all")
    assert manifest.status == "ok", manifest.error
    assert manifest.modes == {"stackpilot": "skip"} and manifest.entries == []
