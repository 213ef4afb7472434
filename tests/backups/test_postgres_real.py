"""The Postgres dump path on a real Postgres (Debian's postgresql package on the suite's Debian base,
tests/support/images.py): back up while it runs (never stopped), change the data, restore the dump
through the Backups page, and the original rows are back; the safety dump holds what was replaced."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from app.backups import jobs
from app.store import Store
from tests.backups.conftest import database_image
from tests.backups.conftest import dump_through_page
from tests.backups.conftest import project_containers
from tests.backups.test_web import settle
from tests.support.images import ensure_postgres_image

pytestmark = pytest.mark.docker

COMPOSE = """
services:
  db:
    image: {pg}
    pull_policy: never
    environment: {{POSTGRES_USER: app, POSTGRES_PASSWORD: s3cret, POSTGRES_DB: shop}}
    volumes: ["pgdata:/var/lib/postgresql/data"]
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "app", "-d", "shop"]
      interval: 1s
      timeout: 3s
      retries: 60
    stop_grace_period: 5s
volumes:
  pgdata:
"""
ROWS = [(1, "apple"), (2, "pear"), (3, "plum, with a comma")]


@pytest.fixture(scope="module")
def postgres_image() -> str:
    return database_image(ensure_postgres_image, "Postgres")


def psql(proj, sql: str, db: str = "shop") -> str:
    cid = project_containers(proj, "db")[0]
    out = subprocess.run(
        ["docker", "exec", cid, "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", db, "-c", sql],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def started_at(proj) -> tuple[str, str]:
    cid = project_containers(proj, "db")[0]
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.Status}}", cid],
        capture_output=True,
        text=True,
        check=True,
    )
    when, state = out.stdout.split()
    return when, state


def rows(proj) -> list[tuple[int, str]]:
    out = psql(proj, "SELECT id, name FROM items ORDER BY id")
    return [(int(line.split("|", 1)[0]), line.split("|", 1)[1]) for line in out.splitlines()]


def test_dump_while_running_then_restore_the_rows(postgres_image, make_stack, backup_server):
    proj = make_stack({"docker-compose.yml": COMPOSE.format(pg=postgres_image)}, name="pgreal")
    proj.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "60")
    psql(proj, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    values = ", ".join(f"({i}, '{name}')" for i, name in ROWS)
    psql(proj, f"INSERT INTO items VALUES {values}")
    assert rows(proj) == ROWS
    before = started_at(proj)

    server = backup_server(proj)
    admin, backup_id, dump = dump_through_page(server, "postgres")
    root = Path(server.data_dir) / "backups"
    assert jobs.POSTGRES_LOCK_TIMEOUT[0].decode() in dump  # what the restore rewrites to a 2 min lock timeout
    assert "CREATE DATABASE shop" in dump and "plum, with a comma" in dump
    assert started_at(proj) == before  # dumped while it ran: never stopped or restarted

    # the data changes after the backup: a row gone, one changed, one new, a new table
    psql(proj, "DELETE FROM items WHERE id = 1; UPDATE items SET name = 'changed' WHERE id = 2")
    psql(proj, "INSERT INTO items VALUES (4, 'later'); CREATE TABLE made_later (x int)")
    # a client connected to the database during the restore: its connection is ended, not waited for
    holder = subprocess.Popen(
        [
            "docker",
            "exec",
            project_containers(proj, "db")[0],
            "psql",
            "-U",
            "app",
            "-d",
            "shop",
            "-c",
            "SELECT pg_sleep(60)",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        confirm = admin.get(f"{server.url}/backups/{backup_id}/restore", params={"service": "db"}, timeout=10)
        assert confirm.status_code == 200
        assert "every database but the templates of the Postgres server in db" in confirm.text
        assert "safety dump" in confirm.text and "Replace the databases and load the dump" in confirm.text
        r = admin.post(f"{server.url}/backups/{backup_id}/restore", data={"service": "db"}, timeout=20)
        assert r.status_code == 200
        listed = settle(server, admin)
        text = admin.get(server.url + "/backups/-/list", timeout=10).text
        assert "Restored; what was there before is kept as" in text, text[:3000]
        assert holder.wait(timeout=30) != 0  # terminated by the restore
    finally:
        if holder.poll() is None:
            holder.kill()
    assert len(listed) == 2 and all(s == "ok" for _, s in listed)

    assert rows(proj) == ROWS
    assert psql(proj, "SELECT count(*) FROM pg_tables WHERE tablename = 'made_later'") == "0"
    assert started_at(proj) == before  # loaded into the running server
    # the safety dump taken first holds what was replaced
    safety_id = next(i for i, _ in listed if i != backup_id)
    safety = json.loads(next(root.glob(f"*/{safety_id}/manifest.json")).read_text())
    assert safety["scope"] == "safety:db" and safety["modes"] == {"db": "dump"}
    kept = gzip.open(root / safety["stack"] / safety_id / safety["entries"][0]["file"]).read().decode()
    assert "made_later" in kept and "changed" in kept
    actions = [(e.action, e.result) for e in Store(Path(server.data_dir) / "stackpilot.sqlite3").audit_events(50)]
    assert ("backup.restore", "ok") in actions
    # the password set by POSTGRES_PASSWORD still works over TCP (the role came back from the dump)
    cid = project_containers(proj, "db")[0]
    tcp = subprocess.run(
        [
            "docker",
            "exec",
            "-e",
            "PGPASSWORD=s3cret",
            cid,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "shop",
            "-Atc",
            "SELECT count(*) FROM items",
        ],
        capture_output=True,
        text=True,
    )
    assert tcp.stdout.strip() == "3", tcp.stderr

    # a stopped database cannot load a dump: the restore says so and takes no safety dump
    proj.compose("stop", "db")
    admin.post(f"{server.url}/backups/{backup_id}/restore", data={"service": "db"}, timeout=20)
    assert len(settle(server, admin)) == 2
    text = admin.get(server.url + "/backups/-/list", timeout=10).text
    assert "db is not running: a dump is loaded into the running database. Start it first." in text


WITH_FILES = COMPOSE.replace(
    "volumes:\n  pgdata:\n",
    """  files:
    image: {{image}}
    pull_policy: never
    command: ["sh", "-c", "echo report > /srv/files/report.txt; exec sleep 3600"]
    volumes: ["filedata:/srv/files"]
    stop_grace_period: 1s
volumes:
  pgdata:
  filedata:
""",
)


@pytest.mark.browser
def test_backups_page_backs_up_and_restores_a_dump(postgres_image, make_stack, backup_server, page):
    """The page offers the dump's restore with its own confirmation, and the list shows the result."""
    from tests.shell.shots import shoot_three

    proj = make_stack({"docker-compose.yml": WITH_FILES.format(pg=postgres_image)}, name="pgpage")
    proj.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "60")
    psql(proj, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO items VALUES (1, 'apple')")
    server = backup_server(proj)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/backups/")
    assert pg.get_attribute("#bk-svc-db .bk-mode", "data-mode") == "dump"
    pg.click("#bk-all")
    pg.wait_for_selector("#bk-list tr[data-status=ok]", timeout=30000)
    pg.wait_for_selector("#bk-running", state="detached", timeout=30000)
    archives = pg.inner_text("#bk-list tr[data-status=ok] [data-label=Archives]")
    assert "db: postgres" in archives and "dump" in archives and "files: filedata" in archives

    psql(proj, "UPDATE items SET name = 'changed'")
    pg.click("#bk-list [data-restore=db]")
    pg.wait_for_selector("#bk-restore-go")
    confirm = pg.inner_text(".bk-confirm")
    assert "every database but the templates of the Postgres server in db" in confirm
    assert "safety dump" in confirm
    shoot_three(pg, "backups-confirm", height=1000)
    pg.click("#bk-restore-go")
    pg.wait_for_selector("#bk-list [role=status]:has-text('Restored')", timeout=40000)
    pg.wait_for_selector("#bk-running", state="detached", timeout=30000)
    assert rows(proj) == [(1, "apple")]
    shoot_three(pg, "backups", height=1000)
    assert page.console_errors == []
