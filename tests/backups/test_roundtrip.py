"""Back up a volume and a bind folder, wipe them, restore: every file's content, mode and owner match."""

from __future__ import annotations

import os
import subprocess

import pytest

from app.backups import jobs
from app.backups.streams import file_list
from app.backups.streams import file_sha256
from app.backups.streams import read_folder
from app.backups.streams import read_gzip
from app.engine import archives
from tests.backups.conftest import BIG_MB
from tests.backups.conftest import project_containers
from tests.backups.conftest import stack_data

pytestmark = pytest.mark.docker


def state(proj, service: str) -> str:
    ids = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={proj.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", ids[0]], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_backup_wipe_restore_matches_every_file(data_stack, backups):
    data = stack_data(data_stack)
    store = backups(data.key)
    volume = f"{data_stack.project}_appdata"
    image = data.images["app"]
    before_volume = file_list(archives.read_volume(data.engine, image, volume))
    before_folder = file_list(read_folder(data_stack.dir / "files"))
    # what the lists hold: owners, modes, links, content hashes
    assert any(line.startswith("f dir/a.txt 640 1000:1001 6 ") for line in before_volume)
    assert "h hard.txt -> dir/a.txt" in before_volume
    assert "l sym 777 0:0 -> dir/a.txt" in before_volume
    assert any(line.startswith("d dir/sub 2750 33:33") for line in before_volume)
    assert any(line.startswith(f"f big.bin 600 0:0 {BIG_MB * 1024 * 1024} ") for line in before_volume)
    assert any(line.startswith("f x-hard.bin 604 1234:5678 300000 ") for line in before_folder)
    assert "h x.bin -> x-hard.bin" in before_folder  # the first in name order holds the data

    manifest = jobs.backup(data, store, ["app", "web"], "all", user="admin")
    assert manifest.status == "ok", manifest.error
    assert manifest.modes == {"app": "stop", "web": "skip"}
    assert manifest.downtime["app"] > 0
    assert state(data_stack, "app") == "running" and state(data_stack, "web") == "running"
    kinds = sorted((e.kind, e.name) for e in manifest.entries)
    assert kinds == [("bind", str(data_stack.dir / "files")), ("volume", "appdata")]  # seed.sh is :ro
    folder = store.path(manifest.id)
    for entry in manifest.entries:
        assert file_sha256(folder / entry.file) == entry.sha256
        assert oct(os.stat(folder / entry.file).st_mode & 0o777) == "0o600"
    vol_entry = next(e for e in manifest.entries if e.kind == "volume")
    assert vol_entry.tar_bytes > BIG_MB * 1024 * 1024 and vol_entry.image
    assert file_list(read_gzip(folder / vol_entry.file)) == before_volume
    assert (data_stack.dir / ".env_backups").exists() is False or manifest.env_backup

    # wipe both, leave strays, then restore
    app = project_containers(data_stack, "app")[0]
    subprocess.run(["docker", "exec", app, "sh", "-c", "rm -rf /data/* && echo stray > /data/stray"], check=True)
    for child in (data_stack.dir / "files").iterdir():
        subprocess.run(["rm", "-rf", str(child)], check=True)
    (data_stack.dir / "files" / "stray").write_text("stray")

    plan = jobs.plan_restore(store, manifest.id, "app")
    assert {f"volume {volume}", f"folder {data_stack.dir / 'files'}"} <= set(plan.replaced())
    safety = jobs.restore(data, store, plan, user="admin")
    assert safety.status == "ok" and safety.scope == "safety:app"
    assert any("stray" in line for line in file_list(read_gzip(store.path(safety.id) / safety.entries[0].file)))
    assert file_list(archives.read_volume(data.engine, image, volume)) == before_volume
    assert file_list(read_folder(data_stack.dir / "files")) == before_folder
    assert os.stat(data_stack.dir / "files" / "x.bin").st_ino == os.stat(data_stack.dir / "files" / "x-hard.bin").st_ino
    assert state(data_stack, "app") == "running"
