"""The Backups page on the real server: Back up now, the list, downloads, restore, who may."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from app.store import Store
from tests.backups.conftest import project_containers
from tests.support.live import wait_for

pytestmark = pytest.mark.docker
ROW = re.compile(r'data-backup-id="([^"]+)" data-status="([a-z]+)"')


def settle(server, session) -> list[tuple[str, str]]:
    """Wait until no job runs; the (id, status) rows of the list."""

    def idle():
        r = session.get(server.url + "/backups/-/list", timeout=10)
        return None if "is running" in r.text else r.text

    return ROW.findall(wait_for(idle, timeout=40, interval=0.2, message="backup job done"))


def test_back_up_download_restore(backup_server, small_stack):
    server = backup_server(small_stack)
    admin = server.session()
    page = admin.get(server.url + "/backups/", timeout=20)
    assert page.status_code == 200
    assert "dbdata" in page.text and str(small_stack.dir / "uploads") in page.text
    assert 'data-mode="stop"' in page.text

    r = admin.post(server.url + "/backups/run", data={"service": "db"}, timeout=20)
    assert r.status_code == 200
    rows = settle(server, admin)
    assert rows[0][1] == "ok", rows
    backup_id = rows[0][0]
    root = Path(server.data_dir) / "backups"
    manifest_path = next(root.glob(f"*/{backup_id}/manifest.json"))
    import json

    manifest = json.loads(manifest_path.read_text())
    assert manifest["modes"] == {"db": "stop"} and manifest["downtime"]["db"] > 0
    assert manifest["env_backup"].startswith(".env.")
    entry = manifest["entries"][0]
    assert entry["kind"] == "volume" and entry["source"] == f"{small_stack.project}_dbdata"

    # the download streams the archive as written, never cached
    url = f"{server.url}/backups/{backup_id}/files/{entry['file']}"
    with admin.get(url, stream=True, timeout=20) as dl:
        assert dl.status_code == 200 and dl.headers["Cache-Control"] == "no-store"
        assert "attachment" in dl.headers["Content-Disposition"]
        digest = hashlib.sha256(b"".join(dl.iter_content(65536))).hexdigest()
    assert digest == entry["sha256"]
    operator = server.session("olga", "operator")
    assert operator.get(url, timeout=10).status_code == 403
    assert operator.get(server.url + "/backups/", timeout=10).status_code == 403
    assert operator.post(server.url + "/backups/run", data={}, timeout=10).status_code == 403
    assert admin.get(f"{server.url}/backups/{backup_id}/files/..%2Fmanifest.json", timeout=10).status_code == 404
    assert admin.get(f"{server.url}/backups/..%2F..%2Fetc/files/x.tar.gz", timeout=10).status_code == 404

    # change the data, then restore: the confirmation names what is replaced
    db = project_containers(small_stack, "db")[0]
    subprocess.run(["docker", "exec", db, "sh", "-c", "echo v2 > /var/lib/db/data; touch /var/lib/db/new"], check=True)
    confirm = admin.get(f"{server.url}/backups/{backup_id}/restore", params={"service": "db"}, timeout=10)
    assert f"volume {small_stack.project}_dbdata" in confirm.text
    r = admin.post(f"{server.url}/backups/{backup_id}/restore", data={"service": "db"}, timeout=20)
    assert r.status_code == 200
    rows = settle(server, admin)
    text = admin.get(server.url + "/backups/-/list", timeout=10).text
    assert "is kept as" in text, text[:2000]
    assert len(rows) == 2 and all(status == "ok" for _, status in rows)
    out = subprocess.run(
        ["docker", "exec", db, "sh", "-c", "cat /var/lib/db/data; ls /var/lib/db"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["v1", "data"]
    actions = [
        (e.action, e.result)
        for e in Store(Path(server.data_dir) / "stackpilot.sqlite3").audit_events(50)
        if e.action.startswith("backup.")
    ]
    assert ("backup.run", "ok") in actions and ("backup.restore", "ok") in actions
    assert ("backup.download", "ok") in actions
