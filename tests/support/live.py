"""The real server in a subprocess (`python -m app` under waitress), and real clients for it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import requests
from simple_websocket import Client

from app import ROOT
from app import passwords
from app.store import Store

TEST_PASSWORD = "correct-horse-battery-staple"
_HASH_CACHE: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def password_hash(password: str = TEST_PASSWORD) -> str:
    """scrypt at full cost is slow on purpose; tests hash the shared password once."""
    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = passwords.hash_password(password)
    return _HASH_CACHE[password]


def ensure_user(data_dir: Path, username: str, role: str) -> None:
    store = Store(Path(data_dir) / "stackpilot.sqlite3")
    if store.user_by_name(username) is None:
        store.add_user(username, password_hash(), role)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll predicate until it returns a truthy value; fail with message after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


class WSClient(Client):
    """simple-websocket's client, sending `Host: name:port` as browsers do (it drops the port)."""

    def handshake(self):
        if self.port not in (80, 443) and ":" not in self.host:
            self.host = f"{self.host}:{self.port}"
        super().handshake()


CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connect from another loopback address (127.0.0.x): a distinct client to the server."""

    def __init__(self, address: str, **kwargs) -> None:
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


@dataclass
class LiveServer:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LiveServer:
        self.port = self.port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKPILOT_", "MANAGEMENT_"))}
        env.update(
            {
                "STACKPILOT_HOST": "127.0.0.1",
                "STACKPILOT_PORT": str(self.port),
                "STACKPILOT_DATA_DIR": str(self.data_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        self.log_path = Path(self.data_dir) / "server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=self.cwd(), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.spawned(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def cwd(self) -> Path:
        """The checkout the server runs from."""
        return ROOT

    def spawned(self, pid: int) -> None:
        """Called with the server's pid before it answers (e.g. to put it in a memory limit)."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    # -- clients ----------------------------------------------------------------------------
    def session(self, username: str = "admin", role: str = "admin") -> requests.Session:
        """A requests.Session signed in through the real login form; .csrf holds its token."""
        ensure_user(self.data_dir, username, role)
        s = requests.Session()
        page = s.get(self.url + "/login", timeout=10)
        token = CSRF_RE.search(page.text).group(1)
        r = s.post(
            self.url + "/login",
            data={"username": username, "password": TEST_PASSWORD, "csrf_token": token},
            timeout=30,
            allow_redirects=False,
        )
        assert r.status_code in (302, 303), f"login failed: {r.status_code} {r.text[:300]}"
        home = s.get(self.url + "/", timeout=10)
        s.csrf = CSRF_RE.search(home.text).group(1)
        s.headers.update({"X-CSRF-Token": s.csrf, "Origin": self.url})
        return s

    def ws_connect(
        self, path: str, session: requests.Session | None = None, origin: str | None = None, **kwargs
    ) -> WSClient:
        """A real WebSocket client connected to path, with session's cookie and our Origin."""
        return WSClient.connect(self.ws_url(path), headers=self.ws_headers(session, origin), **kwargs)

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def ws_headers(self, session: requests.Session | None = None, origin: str | None = None) -> dict:
        headers = {"Origin": origin or self.url}
        if session is not None:
            headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        return headers
