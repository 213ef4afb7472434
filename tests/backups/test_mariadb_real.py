"""The MySQL/MariaDB dump path on a real MariaDB (Debian's mariadb-server 10.11 on the suite's Debian
base, tests/support/images.py): dump mode chosen by the image's name, the dump taken while it runs
(never stopped), the data changed, the dump loaded back through the real server: the dumped tables
are replaced, tables and databases made after the backup are kept (mysqldump drops and writes only
the tables it dumped), users made after it are gone (the grant tables are dumped tables too), a
client holding a transaction is ended rather than waited for, and the safety dump holds what was
replaced. The container's mysql* names are removed first, as in the official mariadb images from
11.0, so the mariadb* tools are used; the mysql* names are tests/backups/test_dump_restore.py's
stand-ins."""

from __future__ import annotations

import gzip
import json
import subprocess
import time
from pathlib import Path

import pytest

from app.store import Store
from tests.backups.conftest import database_image
from tests.backups.conftest import dump_through_page
from tests.backups.conftest import project_containers
from tests.backups.test_web import settle
from tests.support.images import ensure_mariadb_image

pytestmark = pytest.mark.docker

# the root password has a space, quotes and a dollar (compose's $$): the command lines quote it
ROOT_PW = "r00t 'pw' $x"
COMPOSE = """
services:
  db:
    image: {image}
    pull_policy: never
    environment:
      MARIADB_ROOT_PASSWORD: "r00t 'pw' $$x"
      MYSQL_DATABASE: shop
      MYSQL_USER: app
      MYSQL_PASSWORD: app-pw
    volumes: ["mydata:/var/lib/mysql"]
    healthcheck:
      test: ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
      interval: 1s
      timeout: 3s
      retries: 60
    stop_grace_period: 5s
volumes:
  mydata:
"""
ROWS = [(1, "apple"), (2, "pear, with a comma"), (3, "plum 🍑 l'été")]


@pytest.fixture(scope="module")
def mariadb_image() -> str:
    return database_image(ensure_mariadb_image, "MariaDB")


def db_id(proj) -> str:
    return project_containers(proj, "db")[0]


def sql(proj, query: str, user: str = "root", password: str = ROOT_PW, check: bool = True) -> str:
    """Run `query` in shop over TCP (as an app would), tab-separated rows out."""
    out = subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            db_id(proj),
            "mariadb",
            "-h127.0.0.1",
            f"-u{user}",
            f"-p{password}",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
            "shop",
        ],
        input=query,
        capture_output=True,
        text=True,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out.stdout.strip() if check else out.stderr


def rows(proj) -> list[tuple[int, str]]:
    out = sql(proj, "SELECT id, name FROM items ORDER BY id")
    return [(int(line.split("\t", 1)[0]), line.split("\t", 1)[1]) for line in out.splitlines()]


def tables(proj) -> set[str]:
    return set(sql(proj, "SHOW TABLES").split())


def started_at(proj) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.Status}}", db_id(proj)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_dump_while_running_then_restore_the_tables(mariadb_image, make_stack, backup_server):
    proj = make_stack({"docker-compose.yml": COMPOSE.format(image=mariadb_image)}, name="mariareal")
    proj.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "90")
    # as in the official mariadb images from 11.0: no mysql / mysqldump names, only mariadb*
    subprocess.run(["docker", "exec", db_id(proj), "rm", "/usr/bin/mysql", "/usr/bin/mysqldump"], check=True)
    values = ", ".join(f"({i}, '{name.replace(chr(39), chr(39) * 2)}')" for i, name in ROWS)
    sql(
        proj,
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(100) NOT NULL) CHARSET utf8mb4;"
        f"INSERT INTO items VALUES {values};"
        "CREATE FUNCTION answer() RETURNS int DETERMINISTIC RETURN 42;",
    )
    assert rows(proj) == ROWS
    before = started_at(proj)

    server = backup_server(proj)
    admin, backup_id, dump = dump_through_page(server, "mysql")
    root = Path(server.data_dir) / "backups"
    assert "CREATE TABLE `items`" in dump and "plum 🍑 l\\'été" in dump and "FUNCTION `answer`" in dump
    assert started_at(proj) == before  # dumped while it ran: never stopped or restarted

    # after the backup: a row gone, one changed, one new, a new table, a new user
    sql(proj, "DELETE FROM items WHERE id = 1; UPDATE items SET name = 'changed' WHERE id = 2")
    sql(
        proj,
        "INSERT INTO items VALUES (4, 'later'); CREATE TABLE made_later (x int); INSERT INTO made_later VALUES (7)",
    )
    sql(proj, "CREATE USER 'later'@'%' IDENTIFIED BY 'later-pw'; GRANT SELECT ON shop.* TO 'later'@'%'")
    sql(proj, "CREATE DATABASE later_db; CREATE TABLE later_db.t (x int)")
    assert sql(proj, "SELECT 1", user="later", password="later-pw") == "1"

    confirm = admin.get(f"{server.url}/backups/{backup_id}/restore", params={"service": "db"}, timeout=10)
    assert confirm.status_code == 200
    assert "every dumped table of the MySQL/MariaDB server in db" in confirm.text
    assert "its other connections are ended" in confirm.text and "users and grants" in confirm.text
    # an app inside a transaction holds items' metadata lock: DROP TABLE would wait for it (a day);
    # the restore ends that connection instead
    holder = subprocess.Popen(
        [
            *("docker", "exec", db_id(proj), "mariadb", "-h127.0.0.1", "-uapp", "-papp-pw", "--skip-reconnect", "shop"),
            "-e",
            "BEGIN; SELECT count(*) AS held FROM items; SELECT SLEEP(60); SELECT 'not ended';",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while "app" not in sql(proj, "SELECT user FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP%'"):
            assert time.monotonic() < deadline and holder.poll() is None, "the holding client did not start"
            time.sleep(0.2)
        started = time.monotonic()
        r = admin.post(f"{server.url}/backups/{backup_id}/restore", data={"service": "db"}, timeout=20)
        assert r.status_code == 200
        listed = settle(server, admin)
        took = time.monotonic() - started
        text = admin.get(server.url + "/backups/-/list", timeout=10).text
        assert "Restored; what was there before is kept as" in text, text[:3000]
        held_out = holder.communicate(timeout=30)[0]
    finally:
        if holder.poll() is None:
            holder.kill()
    assert took < 30 and "not ended" not in held_out, held_out  # ended, not waited for
    assert holder.returncode != 0

    assert rows(proj) == ROWS  # the dumped table replaced, the utf8mb4 text intact
    assert tables(proj) == {"items", "made_later"}  # made after the backup: kept, as jobs.py documents
    assert sql(proj, "SELECT x FROM made_later") == "7"
    assert sql(proj, "SHOW TABLES FROM later_db") == "t"  # a database made after it: kept too
    assert sql(proj, "SELECT answer()") == "42"
    # the grant tables are dumped tables too, and flushed: a user made after the backup is gone now
    assert "Access denied" in sql(proj, "SELECT 1", user="later", password="later-pw", check=False)
    assert sql(proj, "SELECT count(*) FROM items", user="app", password="app-pw") == "3"  # from MYSQL_USER
    assert started_at(proj) == before  # loaded into the running server

    # the safety dump taken first holds what was replaced
    assert len(listed) == 2 and all(s == "ok" for _, s in listed)
    safety_id = next(i for i, _ in listed if i != backup_id)
    safety = json.loads(next(root.glob(f"*/{safety_id}/manifest.json")).read_text())
    assert safety["scope"] == "safety:db" and safety["modes"] == {"db": "dump"}
    [kept] = safety["entries"]
    assert kept["kind"] == "dump" and kept["name"] == "mysql"
    text = gzip.open(root / safety["stack"] / safety_id / kept["file"]).read().decode()
    assert "'changed'" in text and "(4,'later')" in text and "CREATE TABLE `made_later`" in text
    assert "later" in text.split("`global_priv`", 1)[1]  # the user made after the backup
    actions = [(e.action, e.result) for e in Store(Path(server.data_dir) / "stackpilot.sqlite3").audit_events(50)]
    assert ("backup.restore", "ok") in actions
