"""Down -v: "Back up first", and a volume whose last backup failed is deleted only when its name is typed."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from app.backups import guard
from app.backups.store import Manifest
from app.errors import InvalidInput
from tests.backups.test_web import settle
from tests.support.live import wait_for

CONFIG = {
    "name": "p",
    "services": {
        "db": {"volumes": [{"type": "volume", "source": "dbdata", "target": "/d"}]},
        "web": {"volumes": [{"type": "volume", "source": "shared", "target": "/s"}]},
        "job": {"volumes": [{"type": "volume", "source": "shared", "target": "/s"}]},
    },
    "volumes": {"dbdata": {}, "shared": {"name": "elsewhere"}},
}


def test_last_status_of_each_volume():
    def m(id_, scope, status):
        return Manifest(id=id_, stack="s", project="p", scope=scope, taken_at="", status=status)

    found = [
        m("20260101T000000Z-all", "all", "ok"),
        m("20260102T000000Z-db", "db", "failed"),
        m("20260103T000000Z-safety_web", "safety:web", "failed"),  # safety copies do not count
        m("20260104T000000Z-job", "job", "running"),  # not finished: does not count
    ]
    assert guard.last_status(CONFIG, found) == {"p_dbdata": "failed", "elsewhere": "ok"}
    assert guard.failed_volumes(CONFIG, found) == ["p_dbdata"]
    assert guard.failed_volumes(CONFIG, []) == []
    with pytest.raises(InvalidInput, match="p_dbdata"):
        guard.check_typed(["p_dbdata"], "dbdata")
    guard.check_typed(["p_dbdata"], " p_dbdata ")
    guard.check_typed([], "")


def volume_exists(name: str) -> bool:
    return subprocess.run(["docker", "volume", "inspect", name], capture_output=True).returncode == 0


@pytest.mark.docker
def test_down_volumes_refused_then_backed_up_first(backup_server, small_stack):
    server = backup_server(small_stack)
    admin = server.session()
    volume = f"{small_stack.project}_dbdata"
    assert admin.post(server.url + "/backups/run", data={"service": "db"}, timeout=20).status_code == 200
    rows = settle(server, admin)
    assert rows[0][1] == "ok", rows
    ok_id = rows[0][0]
    folder = next((Path(server.data_dir) / "backups").glob(f"*/{ok_id}"))
    # a later backup of the whole stack that failed (as a scheduled run leaves it)
    failed_id = ok_id.split("-", 1)[0] + "-zz-failed"
    (folder.parent / failed_id).mkdir(mode=0o700)
    failed = Manifest(id=failed_id, stack=folder.parent.name, project=small_stack.project, scope="all", taken_at="")
    failed.status, failed.error = "failed", "the engine went away"
    (folder.parent / failed_id / "manifest.json").write_text(failed.to_json())

    down = server.url + "/stack/down"
    r = admin.post(down, data={"volumes": "delete"}, timeout=20)
    assert r.status_code == 422 and volume in r.text and "Type the volume" in r.text
    r = admin.post(down, data={"volumes": "delete", "confirm_volumes": "dbdata"}, timeout=20)
    assert r.status_code == 422 and volume_exists(volume)
    operator = server.session("olga", "operator")
    assert operator.post(down, data={"volumes": "delete", "backup_first": "1"}, timeout=20).status_code == 403
    assert volume_exists(volume)

    # the page offers both
    page = admin.get(server.url + "/services", timeout=20).text
    assert 'name="backup_first"' in page and 'name="confirm_volumes"' in page

    # Back up first: a new backup of the whole stack, then the down with its volumes
    stamp = ok_id.split("-", 1)[0]
    wait_for(lambda: dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") > stamp, timeout=5, message="next second")
    r = admin.post(down, data={"volumes": "delete", "backup_first": "1"}, timeout=20)
    assert r.status_code == 200 and 'data-backup-first="started"' in r.text
    rows = settle(server, admin)
    newest = json.loads((folder.parent / rows[0][0] / "manifest.json").read_text())
    assert newest["scope"] == "all" and newest["status"] == "ok", newest
    assert any(e["source"] == volume and e["file"] for e in newest["entries"])
    wait_for(lambda: not volume_exists(volume), timeout=60, interval=0.3, message="volume deleted by the down")
