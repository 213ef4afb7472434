"""A service whose volume and bind folder hold known files (hard links, symlinks, modes, owners, a
50 MB file: the issue says 200 MB; 50 MB shows the same streaming and keeps the suite fast)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.backups.jobs import StackData
from app.backups.store import BackupStore
from app.engine import Engine
from tests.support.live import wait_for

BIG_MB = 50

SEED = rf"""
set -e
if [ ! -f /data/.seeded ]; then
  mkdir -p /data/dir/sub /data/empty
  echo hello > /data/dir/a.txt
  chmod 640 /data/dir/a.txt && chown 1000:1001 /data/dir/a.txt
  ln /data/dir/a.txt /data/hard.txt
  ln -s dir/a.txt /data/sym && ln -s /etc/passwd /data/abs-sym
  chmod 2750 /data/dir/sub && chown 33:33 /data/dir/sub
  printf 'spaces' > "/data/name with spaces"
  head -c {BIG_MB * 1024 * 1024} /dev/urandom > /data/big.bin && chmod 600 /data/big.bin
  touch /data/.seeded
fi
echo SEEDED
exec sleep 3600
"""

COMPOSE = """
services:
  app:
    image: {image}
    pull_policy: never
    command: ["sh", "/seed.sh"]
    volumes:
      - appdata:/data
      - ./files:/files
      - ./seed.sh:/seed.sh:ro
    stop_grace_period: 1s
    labels:
      stackpilot.backup: stop
  web:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    depends_on: [app]
    stop_grace_period: 1s
    labels:
      stackpilot.backup: skip
volumes:
  appdata:
"""


def seed_folder(root: Path) -> None:
    """The bind folder's known files, made on the host."""
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "f.txt").write_text("deep\n")
    (root / "x.bin").write_bytes(os.urandom(300_000))
    os.chmod(root / "x.bin", 0o604)
    os.chown(root / "x.bin", 1234, 5678)
    os.link(root / "x.bin", root / "x-hard.bin")
    os.symlink("sub/deep/f.txt", root / "link")
    os.chmod(root / "sub", 0o711)


def project_containers(proj, service: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={proj.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


@pytest.fixture
def data_stack(make_stack):
    proj = make_stack({"docker-compose.yml": COMPOSE, "seed.sh": SEED}, name="bkp")
    (proj.dir / "files").mkdir()
    seed_folder(proj.dir / "files")
    proj.compose("up", "-d", "--no-build")
    wait_for(
        lambda: (
            "SEEDED"
            in subprocess.run(
                ["docker", "logs", project_containers(proj, "app")[0]], capture_output=True, text=True
            ).stdout
        ),
        timeout=30,
        message="seeded",
    )
    return proj


def stack_data(proj) -> StackData:
    config = json.loads(proj.compose("config", "--format", "json").stdout)
    services = config["services"]
    return StackData(
        engine=Engine(),
        project=proj.project,
        key=proj.project,
        directory=proj.dir,
        config=config,
        images={s: v.get("image", "") for s, v in services.items()},
        labels={s: v.get("labels") or {} for s, v in services.items()},
    )


@pytest.fixture
def backups(tmp_path):
    return lambda key: BackupStore(tmp_path / "backups", key)


SMALL = """
services:
  db:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "[ -f /var/lib/db/data ] || echo v1 > /var/lib/db/data; exec sleep 3600"]
    volumes: ["dbdata:/var/lib/db"]
    stop_grace_period: 1s
  web:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    depends_on: [db]
    volumes: ["./uploads:/uploads"]
    stop_grace_period: 1s
volumes:
  dbdata:
"""


@pytest.fixture
def small_stack(make_stack):
    proj = make_stack(
        {"docker-compose.yml": SMALL, ".env": "SECRET=s3cret\n", "uploads/photo.jpg": "jpeg"}, name="bkweb"
    )
    proj.compose("up", "-d", "--no-build")
    return proj


@pytest.fixture
def backup_server(server_factory):
    def factory(proj, **env):
        from app.store import Store

        server = server_factory(stack_dir=proj.dir, **env)
        Store(Path(server.data_dir) / "stackpilot.sqlite3").set_setting(
            "stack", {"project": proj.project, "files": [], "profiles": []}
        )
        return server

    return factory


def database_image(ensure: Callable[[], str], what: str) -> str:
    """A database image built on the suite's Debian base (once per machine); the test skips only
    when that base cannot be built, any later failure is a real one."""
    from tests.support.images import ensure_python_base_image

    try:
        ensure_python_base_image()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the Debian base image cannot be built here (debootstrap: {e}), so no {what} image")
    started = time.monotonic()
    tag = ensure()
    print(f"{what} image {tag} ready in {time.monotonic() - started:.1f} s")
    return tag


def dump_through_page(server, family: str) -> tuple[object, str, str]:
    """Back up the service `db` from the Backups page as an admin and wait for the job: checks that
    dump mode was chosen by the image's name (no label) and that nothing was stopped. Returns the
    admin session, the backup's id and the dump's SQL text."""
    from tests.backups.test_web import settle

    admin = server.session()
    page = admin.get(server.url + "/backups/", timeout=20)
    assert 'data-mode="dump"' in page.text  # chosen by the image's name, no label
    assert admin.post(server.url + "/backups/run", data={"service": "db"}, timeout=20).status_code == 200
    [(backup_id, status)] = settle(server, admin)
    assert status == "ok"
    root = Path(server.data_dir) / "backups"
    manifest = json.loads(next(root.glob(f"*/{backup_id}/manifest.json")).read_text())
    assert manifest["modes"] == {"db": "dump"} and manifest["downtime"] == {}
    [entry] = manifest["entries"]
    assert entry["kind"] == "dump" and entry["name"] == family and entry["file"].endswith(".sql.gz")
    dump = gzip.open(root / manifest["stack"] / backup_id / entry["file"]).read().decode()
    return admin, backup_id, dump
