"""A running busybox service to open shells in, and a live server managing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from simple_websocket import ConnectionClosed

from tests.support.live import wait_for

COMPOSE = """
services:
  box:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    working_dir: /srv
    stop_grace_period: 1s
  idle:
    image: {image}
    pull_policy: never
    command: ["true"]
    restart: "no"
"""


@pytest.fixture
def box(make_stack):
    proj = make_stack({"docker-compose.yml": COMPOSE}, name="shell")
    proj.compose("up", "-d", "--no-build", "box")
    proj.compose("create", "idle")
    return proj


@pytest.fixture
def shell_server(server_factory):
    """Factory: a live server managing proj, with the `shell` setting given."""

    def factory(proj, setting: dict | None = None, **env):
        from app.store import Store

        server = server_factory(stack_dir=proj.dir, **env)
        store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
        store.set_setting("stack", {"project": proj.project, "files": [], "profiles": []})
        if setting is not None:
            store.set_setting("shell", setting)
        return server

    return factory


class Term:
    """What the terminal socket sent: output bytes and control messages."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.out = b""
        self.messages: list[dict] = []
        self.closed = False

    def pump(self, timeout: float = 0.2) -> None:
        try:
            raw = self.ws.receive(timeout=timeout)
        except ConnectionClosed:
            self.closed = True
            return
        if raw is None:
            return
        if isinstance(raw, bytes):
            self.out += raw
        else:
            self.messages.append(json.loads(raw))

    def until(self, predicate, timeout: float = 10, message: str = "condition"):
        def step():
            if predicate(self):
                return True
            if self.closed:
                return predicate(self)
            self.pump()
            return predicate(self)

        return wait_for(step, timeout=timeout, interval=0, message=message)

    def kinds(self) -> list[str]:
        return [m["t"] for m in self.messages]

    def type(self, text: str) -> None:
        self.ws.send(text.encode())

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
