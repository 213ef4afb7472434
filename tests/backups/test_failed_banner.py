"""A failed backup is shown on the services page until an admin marks it seen (kept in the settings table)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.backups.test_web import settle

pytestmark = pytest.mark.docker


def test_failed_backup_banner_until_seen(backup_server, small_stack):
    server = backup_server(small_stack)
    admin = server.session()
    assert 'data-backup-failed="' not in admin.get(server.url + "/services", timeout=20).text

    # a real failed backup: the db service gets a dump label, and busybox has no dump tool
    compose = small_stack.dir / "docker-compose.yml"
    compose.write_text(
        compose.read_text().replace(
            "    stop_grace_period: 1s\n", "    stop_grace_period: 1s\n    labels:\n      stackpilot.backup: dump\n", 1
        )
    )
    assert admin.post(server.url + "/backups/run", data={"service": "db"}, timeout=20).status_code == 200
    rows = settle(server, admin)
    assert rows[0][1] == "failed", rows
    failed_id = rows[0][0]

    page = admin.get(server.url + "/services", timeout=20).text
    assert f'data-backup-failed="{failed_id}"' in page and "1 backup failed" in page
    operator = server.session("olga", "operator")
    seen_as_operator = operator.get(server.url + "/services", timeout=20).text
    assert f'data-backup-failed="{failed_id}"' in seen_as_operator and "Mark as seen" not in seen_as_operator
    assert operator.post(server.url + "/backups/-/seen", data={"upto": failed_id}, timeout=10).status_code == 403
    assert admin.post(server.url + "/backups/-/seen", data={"upto": "../../etc"}, timeout=10).status_code == 404

    r = admin.post(server.url + "/backups/-/seen", data={"upto": failed_id}, timeout=10)
    assert r.status_code == 200 and "data-backup-failed" not in r.text
    assert 'data-backup-failed="' not in admin.get(server.url + "/services", timeout=20).text
    with sqlite3.connect(Path(server.data_dir) / "stackpilot.sqlite3") as db:
        rows = db.execute("SELECT key, value FROM settings WHERE key LIKE 'backups.seen:%'").fetchall()
    assert len(rows) == 1 and failed_id in rows[0][1], rows
