"""Fixtures of the hardening attacks: servers started from this checkout, cleaned up after.

Servers that several tests can share without touching each other's state are module-scoped:
the attacks together must stay well under 90 s of suite time."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from app.store import Store
from tests.conftest import PREFIX
from tests.conftest import ComposeProject
from tests.hardening.attacks import CheckoutServer
from tests.support.live import ensure_user
from tests.support.live import wait_for


def _start(tmp_path_factory, **env: str) -> CheckoutServer:
    data = tmp_path_factory.mktemp("attack-data")
    ensure_user(data, "admin", "admin")
    return CheckoutServer(data_dir=data, env=env).start()


@pytest.fixture
def attack_server(tmp_path_factory):
    """Factory: attack_server(limit=None, **env) -> a started CheckoutServer (stopped after)."""
    started: list[CheckoutServer] = []

    def factory(limit=None, **env: str) -> CheckoutServer:
        data = tmp_path_factory.mktemp("attack-data")
        ensure_user(data, "admin", "admin")
        srv = CheckoutServer(data_dir=data, env=env, limit=limit).start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for the tests that only read, or use their own users and addresses; it trusts
    127.0.0.1 as its proxy (requests from 127.0.0.2 are an untrusted client)."""
    srv = _start(tmp_path_factory, STACKPILOT_TRUSTED_PROXIES="127.0.0.1", MANAGEMENT_HOSTNAME="manage.example.test")
    srv.admin = srv.session()
    yield srv
    srv.stop()


LINES = 60_000  # about 5 MB of log: each download takes a while for a slow reader
CHATTY = """
services:
  chatty:
    image: {image}
    command: ["sh", "-c", "yes 'a line of log text, padded out to be about eighty bytes long ....' | head -n LINES; echo DONE; sleep 3600"]
    stop_signal: SIGKILL
""".replace("LINES", str(LINES))


@pytest.fixture(scope="module")
def chatty(tmp_path_factory, busybox_image):
    """A stack whose one service wrote ~5 MB of log (module-scoped: made once, taken down after)."""
    project = f"{PREFIX}-chatty{secrets.token_hex(2)}"
    root = tmp_path_factory.mktemp("stack") / project
    root.mkdir()
    proj = ComposeProject(dir=root, project=project)
    proj.write("docker-compose.yml", CHATTY.replace("{image}", busybox_image))
    proj.write(".env", "SECRET=hunter2-hunter2\n")
    try:
        proj.compose("up", "-d")
        wait_for(
            lambda: "DONE" in proj.compose("logs", "--no-log-prefix", "--tail", "1").stdout,
            timeout=30,
            message="the log written",
        )
        yield proj
    finally:
        proj.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)


@pytest.fixture(scope="module")
def chatty_server(tmp_path_factory, chatty):
    srv = _start(tmp_path_factory, STACKPILOT_STACK_DIR=str(chatty.dir), STACKPILOT_MAX_LOG_SOCKETS="10")
    Store(Path(srv.data_dir) / "stackpilot.sqlite3").set_setting(
        "stack", {"project": chatty.project, "files": [], "profiles": []}
    )
    srv.project = chatty.project
    yield srv
    srv.stop()
