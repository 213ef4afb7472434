"""The dump path through exec, with a stand-in pg_dumpall (a script in the busybox service): the tool
found in the container through the label, its output streamed into .sql.gz, its exit code and stderr
deciding the backup's status, the service left running. A real Postgres (dump, change, restore) is
tests/backups/test_postgres_real.py."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest

from app.backups import jobs
from app.backups.mounts import consistency
from app.backups.mounts import image_family
from tests.backups.conftest import stack_data
from tests.backups.test_roundtrip import state

pytestmark = pytest.mark.docker

FAKE_PG_DUMPALL = """#!/bin/sh
if [ -f /fail ]; then echo "pg_dumpall: connection refused" >&2; exit 3; fi
echo "-- dump by $1 $2"
i=0; while [ $i -lt 20000 ]; do echo "INSERT INTO t VALUES ($i);"; i=$((i+1)); done
"""

COMPOSE = """
services:
  db:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    environment: {POSTGRES_USER: app}
    volumes: ["pgdata:/var/lib/postgresql/data", "./pg_dumpall:/bin/pg_dumpall:ro"]
    labels: {stackpilot.backup: dump}
    stop_grace_period: 1s
volumes:
  pgdata:
"""


def test_dump_streams_the_tools_output(make_stack, backups):
    proj = make_stack({"docker-compose.yml": COMPOSE, "pg_dumpall": FAKE_PG_DUMPALL}, name="dump")
    (proj.dir / "pg_dumpall").chmod(0o755)
    proj.compose("up", "-d", "--no-build")
    data = stack_data(proj)
    store = backups(data.key)
    manifest = jobs.backup(data, store, ["db"], "db")
    assert manifest.status == "ok", manifest.error
    assert manifest.modes == {"db": "dump"} and "db" not in manifest.downtime  # never stopped
    [entry] = manifest.entries
    assert entry.kind == "dump" and entry.name == "postgres" and entry.file.endswith(".sql.gz")
    text = gzip.open(store.path(manifest.id) / entry.file).read().decode()
    assert text.startswith("-- dump by -U app\n") and text.endswith("INSERT INTO t VALUES (19999);\n")
    assert json.loads((store.path(manifest.id) / "manifest.json").read_text())["entries"][0]["sha256"] == entry.sha256
    assert state(proj, "db") == "running"

    db = proj.compose("ps", "-q", "db").stdout.split()[0]
    subprocess.run(["docker", "exec", db, "touch", "/fail"], check=True)
    failed = jobs.backup(data, store, ["db"], "db")
    assert failed.status == "failed" and "exit 3" in failed.error and "connection refused" in failed.error
    assert [p.name for p in store.path(failed.id).iterdir()] == ["manifest.json"]
    assert state(proj, "db") == "running"


@pytest.mark.parametrize(
    ("image", "family"),
    [
        ("postgres:16-alpine", "postgres"),
        ("ghcr.io/x/postgis:15", "postgres"),
        ("timescale/timescaledb:latest-pg16", "postgres"),
        ("timescale/timescaledb-ha:pg16", "postgres"),
        ("mariadb:11", "mysql"),
        ("stackpilot-test/mariadb:407b7f9acff0", "mysql"),  # tests/support/images.py's
        ("localhost:5000/mariadb@sha256:" + "0" * 64, "mysql"),
        ("lscr.io/linuxserver/mariadb", "mysql"),
        ("mysql/mysql-server:8.0", "mysql"),
        ("percona/percona-server:8.0", "mysql"),
        ("valkey/valkey:8", "redis"),
        ("redis:7", "redis"),
        ("nginx", ""),
        ("phpmyadmin:5", ""),
        ("prom/mysqld-exporter", ""),
    ],
)
def test_image_family_by_the_last_path_segment(image, family):
    assert image_family(image) == family
    if family:
        assert consistency({}, image)[0] == "dump"
        assert consistency({"stackpilot.backup": "stop"}, image)[0] == "stop"  # the label overrides


def test_the_mode_says_which_database():
    assert consistency({}, "mariadb:11")[1] == "MySQL/MariaDB image: a dump while it runs"
    assert consistency({}, "postgres:16")[1] == "Postgres image: a dump while it runs"


def test_the_dumps_lock_timeout_is_rewritten_across_chunk_boundaries():
    """pg_dump's `SET lock_timeout = 0;` would let the restore wait forever on an app's lock; it is
    rewritten wherever the stream's chunks happen to cut it, and nothing else changes."""
    old, new = jobs.POSTGRES_LOCK_TIMEOUT
    text = (
        b"--\n-- db one\n--"
        + old
        + b"SELECT 1;\nCOPY t FROM stdin;\nSET lock_timeout = 0;\n\\.\n"
        + b"\\connect b"
        + old
    )
    want = text.replace(old, new)
    assert want.count(new) == 2 and b"\nSET lock_timeout = 0;\n\\." in want  # alone (COPY data) it stays
    for cut in range(1, len(text)):
        for size in (cut, 7):
            chunks = [text[:cut]] + [text[i : i + size] for i in range(cut, len(text), size)]
            assert b"".join(jobs._replace_in_stream(iter(chunks), old, new)) == want
