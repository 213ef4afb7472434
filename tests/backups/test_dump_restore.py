"""Loading a dump back through exec with stdin attached (app/engine/exec.py feed), with stand-in
`mysqldump` / `mysql` scripts in the busybox service (the names of the official mysql images; the real
MariaDB round trip, with the mariadb* names, is tests/backups/test_mariadb_real.py, the Postgres one
tests/backups/test_postgres_real.py): every byte of the dump reaches the client's stdin and its end is
signalled, the safety dump comes first, and a client that fails half way (exiting before reading it
all) fails the restore with its own error, naming the safety dump. The root password reaches both
tools as the official images take it (MYSQL_ or MARIADB_ name, a *_FILE secret, none at all)."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import time

import pytest

from app.backups import jobs
from tests.backups.conftest import stack_data
from tests.backups.test_roundtrip import state
from tests.support.live import wait_for

pytestmark = pytest.mark.docker

FAKE_MYSQLDUMP = r"""#!/bin/sh
echo "$* pwd=${MYSQL_PWD-unset}" > /tmp/mysqldump-args
echo "-- dump of generation $(cat /tmp/generation 2>/dev/null || echo 1)"
awk 'BEGIN { for (i = 0; i < 30000; i++) printf "INSERT INTO t VALUES (%d, \047row %d\047);\n", i, i }'
"""
# The restore's client: keeps what it was given up to its `\q` line (and how it was called), or fails
# after 3 lines; /tmp/hang: reads nothing and waits (a lock it never gets); /tmp/noisy: one real error,
# then 40 kB of harmless notices, and exit 0 (as psql with ON_ERROR_STOP off).
FAKE_MYSQL = r"""#!/bin/sh
case "$*" in *" -e "*) echo "$*" > /tmp/mysql-query; exit 0 ;; esac  # the restore's other connections: none
echo "$* pwd=${MYSQL_PWD-unset}" > /tmp/mysql-args
if [ -f /tmp/hang ]; then exec sleep 30; fi
if [ -f /tmp/noisy ]; then
  echo 'ERROR:  relation "t" already exists' >&2
  i=0; while [ $i -lt 800 ]; do echo "NOTICE:  role \"app\" already exists, skipping it for now $i" >&2; i=$((i+1)); done
  awk '{ print } /^\\q$/ { exit }' > /dev/null; exit 0
fi
if [ -f /tmp/fail ]; then
  head -n 3 > /dev/null
  echo "ERROR 1064 (42000) at line 3: You have an error in your SQL syntax" >&2
  exit 1
fi
awk '{ print } /^\\q$/ { exit }' > /tmp/restored.sql
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


def root_password_as_the_official_images_take_it(proj) -> None:
    """MARIADB_ before MYSQL_, a *_FILE secret, and no -p at all when there is none (a bare -p would
    ask, and a restore's client would read the dump's first line as the password)."""
    db = proj.compose("ps", "-q", "db").stdout.split()[0]
    subprocess.run(["docker", "exec", db, "sh", "-c", "printf 'from a file\\n' > /tmp/pw"], check=True)
    dump_cmd = jobs.DUMP_COMMANDS["mysql"][0]
    options = "--all-databases --single-transaction --routines --events --default-character-set=utf8mb4"

    def dump_args(*env: str) -> str:
        pairs = [a for e in env for a in ("-e", e)]
        subprocess.run(["docker", "exec", *pairs, db, *dump_cmd], capture_output=True, check=True)
        return in_db(proj, "cat", "/tmp/mysqldump-args").stdout.decode().strip()

    # in MYSQL_PWD, never on the command line (ps shows that to everyone in the container)
    assert dump_args() == f"-uroot {options} pwd=r00t pw"  # MYSQL_ROOT_PASSWORD of the service
    assert dump_args("MARIADB_ROOT_PASSWORD=maria $pw") == f"-uroot {options} pwd=maria $pw"
    assert (
        dump_args("MYSQL_ROOT_PASSWORD=", "MARIADB_ROOT_PASSWORD_FILE=/tmp/pw") == f"-uroot {options} pwd=from a file"
    )
    assert dump_args("MYSQL_ROOT_PASSWORD=", "MYSQL_ALLOW_EMPTY_PASSWORD=yes") == f"-uroot {options} pwd=unset"
    restore_cmd = jobs.RESTORE_COMMANDS["mysql"][0]
    subprocess.run(
        ["docker", "exec", "-i", "-e", "MYSQL_ROOT_PASSWORD=", db, *restore_cmd],
        input=b"",
        capture_output=True,
        check=True,
    )
    assert in_db(proj, "cat", "/tmp/mysql-args").stdout == b"-uroot pwd=unset\n"


def test_a_dump_is_fed_to_the_client_and_its_failure_reported(make_stack, backups, monkeypatch):
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
    _, prelude, epilogue, _ = jobs.RESTORE_COMMANDS["mysql"]
    assert restored.startswith(prelude) and restored.endswith(epilogue)
    restored = restored[len(prelude) : -len(epilogue)]
    assert hashlib.sha256(restored).hexdigest() == hashlib.sha256(dumped).hexdigest()  # every byte, then EOF
    assert in_db(proj, "cat", "/tmp/mysql-args").stdout == b"-uroot pwd=r00t pw\n"
    assert b"information_schema.processlist" in in_db(proj, "cat", "/tmp/mysql-query").stdout  # others ended
    [kept] = store.get(safety.id).entries
    assert gzip.open(store.path(safety.id) / kept.file).readline() == b"-- dump of generation 2\n"
    assert state(proj, "db") == "running"
    root_password_as_the_official_images_take_it(proj)

    in_db(proj, "touch", "/tmp/fail")
    with pytest.raises(jobs.StackpilotError) as failed:
        jobs.restore(data, store, plan)
    message = failed.value.message
    assert "mysql exit 1" in message and "ERROR 1064 (42000) at line 3" in message
    assert "The safety dump" in message and "holds what was there" in message
    assert state(proj, "db") == "running"

    # an early error followed by more than the kept tail of notices still fails it
    in_db(proj, "sh", "-c", "rm /tmp/fail; touch /tmp/noisy")
    with pytest.raises(jobs.StackpilotError) as failed:
        jobs.restore(data, store, plan)
    assert '1 errors): ERROR:  relation "t" already exists' in failed.value.message

    # the archive cannot be read to its end: the client's input is cut, never ended with \q
    in_db(proj, "sh", "-c", "rm /tmp/noisy /tmp/restored.sql")

    def breaks_halfway(path):
        for n, chunk in enumerate(real_read_gzip(path)):
            if n == 3:
                raise OSError("Input/output error")
            yield chunk

    real_read_gzip = jobs.read_gzip
    monkeypatch.setattr(jobs, "read_gzip", breaks_halfway)
    with pytest.raises(jobs.StackpilotError) as failed:
        jobs.restore(data, store, plan)
    message = failed.value.message
    assert f"Reading the archive {entry.file} failed" in message and "Input/output error" in message
    assert "The safety dump" in message
    monkeypatch.undo()
    wait_for(
        lambda: in_db(proj, "sh", "-c", "pidof awk || echo gone").stdout == b"gone\n", 10, message="the client done"
    )
    partial = in_db(proj, "cat", "/tmp/restored.sql").stdout
    assert partial.startswith(prelude) and b"\\q" not in partial and len(partial) < len(dumped)

    # a client that neither reads nor writes (waiting on a lock) is cut after the stall time, naming it
    in_db(proj, "touch", "/tmp/hang")
    monkeypatch.setattr(jobs, "RESTORE_STALL", 2.0)
    t0 = time.monotonic()
    with pytest.raises(jobs.StackpilotError) as failed:
        jobs.restore(data, store, plan)
    assert time.monotonic() - t0 < 30
    message = failed.value.message
    assert "read and wrote nothing for 2 s" in message and "The safety dump" in message
    assert state(proj, "db") == "running"
