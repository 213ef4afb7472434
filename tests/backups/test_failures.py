"""A backup that breaks halfway is marked failed and leaves the service running; hostile names write
nothing outside the backups folder."""

from __future__ import annotations

import io
import subprocess
import tarfile
import threading

import pytest

from app.backups import jobs
from app.backups import streams
from app.backups.store import BackupStore
from app.backups.store import Entry
from app.backups.store import Manifest
from app.errors import InvalidInput
from app.errors import NotFound
from tests.backups.conftest import project_containers
from tests.backups.conftest import stack_data
from tests.backups.test_roundtrip import state
from tests.support.live import wait_for


@pytest.mark.docker
def test_service_killed_during_a_live_copy(data_stack, backups, monkeypatch):
    """The engine finishes an archive stream even when its container is removed meanwhile (docker rm
    waits for it), so the copy that breaks is a live one: the service dies while it is read."""
    data = stack_data(data_stack)
    store = backups(data.key)
    monkeypatch.setattr(streams, "LEVEL", 6)  # a slower compressor: the copy lasts long enough to be cut
    killed = []

    def kill_service():
        def helper_ids():
            return subprocess.run(
                ["docker", "ps", "-aq", "--filter", "label=io.stackpilot.backup-helper"], capture_output=True, text=True
            ).stdout.split()

        wait_for(helper_ids, timeout=20, interval=0.02, message="helper container")
        app = project_containers(data_stack, "app")
        subprocess.run(["docker", "kill", *app], capture_output=True, check=True)
        killed.extend(app)

    killer = threading.Thread(target=kill_service)
    killer.start()
    manifest = jobs.backup(data, store, ["app"], "app", modes={"app": "live"})
    killer.join()
    assert killed
    assert manifest.status == "failed" and "during the copy" in manifest.error
    assert state(data_stack, "app") == "running"  # started again
    folder = store.path(manifest.id)
    assert [p.name for p in folder.iterdir()] == ["manifest.json"]  # no half-trusted archive is kept
    assert store.list()[0].status == "failed"


def test_hostile_names_stay_inside(tmp_path):
    root = tmp_path / "backups"
    outside = tmp_path / "outside"
    outside.mkdir()
    store = BackupStore(root, "../outside")
    assert store.folder.parent == root.resolve()
    manifest = Manifest(id=store.new_id("../../outside/x"), stack="s", project="p", scope="../../x", taken_at="")
    work = store.begin(manifest)
    assert root.resolve() in work.parents
    entry = Entry(service="../..", kind="volume", name="../../../etc/passwd", source="/etc", target="/x")
    path = store.archive_path(work, 1, entry, "tar.gz")
    assert path.parent == work and "/" not in path.name and not path.name.startswith(".")
    for bad in ("../outside", "..", "20260101T000000Z-../../x", "/etc", ""):
        with pytest.raises(NotFound):
            store.path(bad)
    store.finish(work, manifest)
    with pytest.raises(NotFound):
        store.file(manifest.id, "../manifest.json")
    with pytest.raises(NotFound):
        store.file(manifest.id, "manifest.json")  # only archives the manifest lists
    assert list(outside.iterdir()) == []

    # an archive whose entries leave the folder, or write through a link it made, is refused
    for members in (
        ["stackpilot-data/../../evil"],
        ["/etc/evil"],
        ["other/x"],
        [("stackpilot-data/ln", "/tmp"), "stackpilot-data/ln/evil"],
    ):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for m in members:
                if isinstance(m, tuple):
                    info = tarfile.TarInfo(m[0])
                    info.type, info.linkname = tarfile.SYMTYPE, m[1]
                    tar.addfile(info)
                else:
                    tar.addfile(tarfile.TarInfo(m), io.BytesIO(b""))
        dest = tmp_path / "dest"
        dest.mkdir(exist_ok=True)
        with pytest.raises(InvalidInput):
            streams.extract_to_folder([buf.getvalue()], dest)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil").exists()
