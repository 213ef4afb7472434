"""A bind folder of a service on a remote engine (engine 2 over TLS) is on that engine's host: its
backup and restore go through a created container of the service's image, never through our own
file system. Engine 2 runs on this machine, so the "remote host's" folder is a tmp folder here we can
look at; the local direct-read functions are made to fail so the test proves they are not used."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from app.backups import jobs
from app.backups.store import BackupStore
from app.backups.streams import file_list
from app.backups.streams import read_folder
from app.backups.streams import read_gzip
from app.engine.registry import NewEngine
from app.engine.registry import add_engine
from app.engine.registry import remove_engine
from tests.backups.conftest import seed_folder
from tests.conftest import PREFIX
from tests.conftest import compose_bin
from tests.support.engine2 import shared_engine2
from tests.support.live import wait_for

pytestmark = pytest.mark.docker

COMPOSE = """
services:
  app:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
    volumes: ["{host}:/files"]
    stop_grace_period: 2s
    labels:
      stackpilot.backup: stop
"""


@pytest.fixture(scope="module")
def engine2(busybox_image):
    try:
        return shared_engine2((busybox_image,))
    except RuntimeError as e:
        pytest.fail(f"engine 2 could not be started: {e}")


@pytest.fixture
def remote(app, engine2):
    """Engine 2 added to Stackpilot over TLS: a remote engine, as a user adds one."""
    registry, store, data = (
        app.extensions["stackpilot.engines"],
        app.extensions["stackpilot.store"],
        app.config["SETTINGS"].data_dir,
    )
    c = engine2.certs
    new = NewEngine(
        name="bind host",
        url=engine2.tcp_url,
        ca=c.text("ca.pem"),
        cert=c.text("client-cert.pem"),
        key=c.text("client-key.pem"),
    )
    engine = add_engine(registry, store, data, new)
    assert engine.kind != "local"
    yield engine
    remove_engine(registry, store, data, engine.id)


@pytest.fixture
def e2_stack(engine2, busybox_image, tmp_path):
    """A compose project up on engine 2 (through its back door) whose service binds `host`."""
    project = f"{PREFIX}-rbind-{os.urandom(2).hex()}"
    folder, host = tmp_path / project, tmp_path / "host-files"
    folder.mkdir()
    host.mkdir()
    seed_folder(host)
    (folder / "compose.yaml").write_text(COMPOSE.format(image=busybox_image, host=host))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}, "DOCKER_HOST": engine2.unix_host}
    base = [*compose_bin(), "--project-directory", str(folder), "-p", project]

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=120)

    up = compose("up", "-d")
    assert up.returncode == 0, up.stderr
    config = json.loads(compose("config", "--format", "json").stdout)
    yield project, folder, host, config
    compose("down", "-v", "-t", "0")


def _running(engine2, project: str) -> bool:
    out = engine2.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout
    return bool(out.split())


def test_a_remote_bind_folder_is_backed_up_and_restored_on_its_host(remote, engine2, e2_stack, tmp_path, monkeypatch):
    project, folder, host, config = e2_stack
    before = file_list(read_folder(host))  # the truth, read here by the harness (engine 2's host is ours)
    assert any(line.startswith("f x-hard.bin 604 1234:5678 300000 ") for line in before)

    def not_here(*args, **kwargs):
        raise AssertionError("a remote engine's bind folder was read or written on Stackpilot's own file system")

    for name in ("read_folder", "empty_folder", "extract_to_folder"):
        monkeypatch.setattr(jobs, name, not_here)

    services = config["services"]
    data = jobs.StackData(
        engine=remote,
        project=project,
        key=project,
        directory=folder,
        config=config,
        images={s: v.get("image", "") for s, v in services.items()},
        labels={s: v.get("labels") or {} for s, v in services.items()},
    )
    store = BackupStore(tmp_path / "backups", project)

    manifest = jobs.backup(data, store, ["app"], "all", user="admin")
    assert manifest.status == "ok", manifest.error
    assert manifest.modes == {"app": "stop"} and manifest.downtime["app"] > 0
    assert [(e.kind, e.source) for e in manifest.entries] == [("bind", str(host))]
    assert file_list(read_gzip(store.path(manifest.id) / manifest.entries[0].file)) == before
    wait_for(lambda: _running(engine2, project), timeout=20, message="app started again after its backup")

    # wipe the folder on the "remote host", leave a stray, restore through engine 2
    for child in host.iterdir():
        subprocess.run(["rm", "-rf", str(child)], check=True)
    (host / "stray").write_text("stray")
    plan = jobs.plan_restore(store, manifest.id, "app")
    assert plan.replaced() == [f"folder {host}"]
    safety = jobs.restore(data, store, plan, user="admin")
    assert safety.status == "ok", safety.error
    assert any("stray" in line for line in file_list(read_gzip(store.path(safety.id) / safety.entries[0].file)))
    assert file_list(read_folder(host)) == before
    assert os.stat(host / "x.bin").st_ino == os.stat(host / "x-hard.bin").st_ino
    assert _running(engine2, project)

    # the folder gone from the engine's host: that mount's backup fails, saying so, and leaves no archive
    subprocess.run(["rm", "-rf", str(host)], check=True)
    failed = jobs.backup(data, store, ["app"], "all", user="admin", modes={"app": "live"})
    assert failed.status == "failed"
    assert f"The folder {host} does not exist on bind host" in failed.error
    assert failed.entries == [] and not list(Path(store.path(failed.id)).glob("*.tar.gz"))
    assert not host.exists()  # not made by the backup's helper (a read-only bind mount, not a bind)
