"""Fixtures of the API tests: one server over one small real stack per module (each test makes its
own tokens, so they do not share a rate-limit budget), and a token maker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from app import tokens
from app.settings import load_secret_key
from app.store import Store
from tests.conftest import PREFIX
from tests.conftest import ComposeProject
from tests.support.live import LiveServer
from tests.support.live import ensure_user

COMPOSE = """\
services:
  db:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    labels: {{stackpilot.group: foundation}}
    healthcheck: {{test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 2}}
  api:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while [ $$i -lt 120 ]; do echo api line $$i; i=$$((i+1)); done; while true; do sleep 0.2; done"]
    labels: {{stackpilot.group: core}}
    depends_on: [db]
  web:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    labels: {{stackpilot.group: core}}
    depends_on: [api]
    environment: {{GREETING: "${{GREETING}}", API_PASSWORD: "${{API_PASSWORD}}"}}
"""


class ApiServer:
    def __init__(self, server: LiveServer, stack: ComposeProject) -> None:
        self.server = server
        self.stack = stack
        self.url = server.url
        self.store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
        self.secret = load_secret_key(Path(server.data_dir))
        self._n = 0

    def token(self, role: str = "admin", username: str = "admin", days: int | None = None) -> str:
        ensure_user(self.server.data_dir, username, role if username != "admin" else "admin")
        self._n += 1
        plain, _ = tokens.create(self.store, self.secret, self.store.user_by_name(username), f"t{self._n}", role, days)
        return plain

    def client(self, role: str = "admin", username: str = "admin") -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + self.token(role, username)
        return s

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1/stacks/-{path}"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, busybox_image):
    root = tmp_path_factory.mktemp("apistack") / f"{PREFIX}-api{tmp_path_factory.getbasetemp().name[-3:]}"
    root.mkdir()
    stack = ComposeProject(dir=root, project=root.name)
    stack.write("compose.yaml", COMPOSE.format(image=busybox_image))
    stack.write(".env", "GREETING=hello\nAPI_PASSWORD=first-secret-value-123\n")
    stack.compose("up", "-d", "--wait", "db")
    data = tmp_path_factory.mktemp("api-data")
    ensure_user(data, "admin", "admin")
    server = LiveServer(
        data_dir=data,
        env={
            "STACKPILOT_STACK_DIR": str(root),
            "STACKPILOT_API_RATE_LIMIT": "40",
            "STACKPILOT_API_ADDRESS_LIMIT": "100000",
            "STACKPILOT_MAX_LOG_SOCKETS_PER_USER": "2",
        },
    ).start()
    try:
        yield ApiServer(server, stack)
    finally:
        server.stop()
        stack.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
