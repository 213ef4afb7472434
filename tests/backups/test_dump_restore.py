"""Loading a dump back through exec with stdin attached (app/engine/exec.py feed), with stand-in
`mysqldump` / `mysql` scripts in the busybox service (no MySQL image is built for the suite; the real
Postgres round trip is tests/backups/test_postgres_real.py): every byte of the dump reaches the
client's stdin and its end is signalled, the safety dump comes first, and a client that fails half
way (exiting before reading it all) fails the restore with its own error, naming the safety dump."""

from __future__ import annotations

import gzip
import hashlib
import subprocess

import pytest

from app.backups import jobs
from tests.backups.conftest import stack_data
from tests.backups.test_roundtrip import state

pytestmark = pytest.mark.docker

FAKE_MYSQLDUMP = r"""#!/bin/sh
echo "-- dump of generation $(cat /tmp/generation 2>/dev/null || echo 1)"
awk 'BEGIN { for (i = 0; i < 30000; i++) printf "INSERT INTO t VALUES (%d, \047row %d\047);\n", i, i }'
"""
# The restore's client: keeps what it was given (and how it was called), or fails after 3 lines.
FAKE_MYSQL = """#!/bin/sh
echo "$*" > /tmp/mysql-args
if [ -f /tmp/fail ]; then
  head -n 3 > /dev/null
  echo "ERROR 1064 (42000) at line 3: You have an error in your SQL syntax" >&2
  exit 1
fi
cat > /tmp/restored.sql
"""

COMPOSE = """
services:
  db:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    environment: {MYSQL_ROOT_PASSWORD: "r00t pw"}
    volumes: ["mydata:/var/lib/mysql", "./mysqldump:/bin/mysqldump:ro", "./mysql:/bin/mysql:ro"]
    labels: {stackpilot.backup: dump}
    stop_grace_period: 1s
volumes:
  mydata:
"""


def in_db(proj, *cmd: str) -> subprocess.CompletedProcess:
    db = proj.compose("ps", "-q", "db").stdout.split()[0]
    return subprocess.run(["docker", "exec", db, *cmd], capture_output=True, check=True)


def test_a_dump_is_fed_to_the_client_and_its_failure_reported(make_stack, backups):
    proj = make_stack({"docker-compose.yml": COMPOSE, "mysqldump": FAKE_MYSQLDUMP, "mysql": FAKE_MYSQL}, name="feed")
    (proj.dir / "mysqldump").chmod(0o755)
    (proj.dir / "mysql").chmod(0o755)
    proj.compose("up", "-d", "--no-build")
    data = stack_data(proj)
    store = backups(data.key)
    manifest = jobs.backup(data, store, ["db"], "db")
    assert manifest.status == "ok", manifest.error
    [entry] = manifest.entries
    assert entry.kind == "dump" and entry.name == "mysql"
    dumped = gzip.open(store.path(manifest.id) / entry.file).read()
    assert len(dumped) > 900_000

    in_db(proj, "sh", "-c", "echo 2 > /tmp/generation")
    plan = jobs.plan_restore(store, manifest.id, "db")
    assert plan.replaced() == ["every dumped table of the MySQL/MariaDB server in db"]
    safety = jobs.restore(data, store, plan)
    restored = in_db(proj, "cat", "/tmp/restored.sql").stdout
    assert hashlib.sha256(restored).hexdigest() == hashlib.sha256(dumped).hexdigest()  # every byte, then EOF
    assert in_db(proj, "cat", "/tmp/mysql-args").stdout == b"-uroot -pr00t pw\n"
    [kept] = store.get(safety.id).entries
    assert gzip.open(store.path(safety.id) / kept.file).readline() == b"-- dump of generation 2\n"
    assert state(proj, "db") == "running"

    in_db(proj, "touch", "/tmp/fail")
    with pytest.raises(jobs.StackpilotError) as failed:
        jobs.restore(data, store, plan)
    message = failed.value.message
    assert "mysql exit 1" in message and "ERROR 1064 (42000) at line 3" in message
    assert "The safety dump" in message and "holds what was there" in message
    assert state(proj, "db") == "running"
