"""Real Caddy (the Debian package) with the repo's Caddyfile in front of the real server.

Caddy serves a test hostname with `tls internal`. The client connects to 127.0.0.1 with that
name in SNI and Host (curl --resolve style), from 127.0.0.2, so the address the app records
can only be right if it believes Caddy's X-Forwarded-For and nobody else's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_websocket import Client
from simple_websocket import ConnectionError as WSConnectionError
from simple_websocket.ws import Base
from wsproto import ConnectionType

from tests.packaging.image import ROOT
from tests.support.live import TEST_PASSWORD
from tests.support.live import ensure_user
from tests.support.live import free_port
from tests.support.live import wait_for

pytestmark = [pytest.mark.slow]

HOSTNAME = "stackpilot.test"
CLIENT_IP = "127.0.0.2"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class Caddy:
    def __init__(self, workdir: Path, upstream: str, **env: str) -> None:
        self.workdir = workdir
        self.https_port = free_port()
        self.http_port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "XDG_DATA_HOME": str(workdir / "data"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
            "CADDY_HTTPS_PORT": str(self.https_port),
            "CADDY_HTTP_PORT": str(self.http_port),
            "CADDY_ADMIN": "off",
            "STACKPILOT_UPSTREAM": upstream,
            **env,
        }
        self.log_path = workdir / "caddy.log"
        self.proc: subprocess.Popen | None = None

    @property
    def root_cert(self) -> Path:
        return self.workdir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    @property
    def origin(self) -> str:
        return f"https://{HOSTNAME}:{self.https_port}"

    def start(self) -> Caddy:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [CADDY, "run", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"caddy exited:\n{self.log_path.read_text()}")
            if not self.root_cert.exists():
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1) as raw:
                    with self.ssl_context().wrap_socket(raw, server_hostname=HOSTNAME):
                        return True
            except (OSError, ssl.SSLError):
                return False

        wait_for(serving, timeout=30, interval=0.1, message="caddy to serve HTTPS")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root_cert))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.https_port}{path}"

    def session(self) -> requests.Session:
        """A requests.Session that reaches HOSTNAME at 127.0.0.1, from CLIENT_IP, verifying
        Caddy's local CA."""
        s = requests.Session()
        s.mount("https://", _PinnedAdapter(HOSTNAME, CLIENT_IP))
        s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace verify
        s.verify = str(self.root_cert)
        s.headers["Host"] = f"{HOSTNAME}:{self.https_port}"
        return s

    def ws_connect(self, path: str, headers: dict[str, str]) -> Client:
        return _PinnedWSClient(
            ("127.0.0.1", self.https_port), f"{HOSTNAME}:{self.https_port}", path, headers, self.ssl_context()
        )


class _PinnedAdapter(HTTPAdapter):
    """Connections from `source`; for HTTPS, with `hostname` as SNI and certificate name."""

    def __init__(self, hostname: str | None, source: str) -> None:
        self.hostname = hostname
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        if self.hostname:
            kwargs.update(server_hostname=self.hostname, assert_hostname=self.hostname)
        super().init_poolmanager(*args, **kwargs)


class _PinnedWSClient(Client):
    """simple-websocket's client over a TLS socket we open ourselves (address, SNI, source)."""

    def __init__(self, address, host: str, path: str, headers: dict[str, str], context: ssl.SSLContext):
        self.host = host
        self.port = address[1]
        self.path = path
        self.subprotocols = []
        self.extra_headeers = list(headers.items())
        raw = socket.create_connection(address, timeout=10, source_address=(CLIENT_IP, 0))
        sock = context.wrap_socket(raw, server_hostname=host.split(":")[0])
        sock.settimeout(None)
        Base.__init__(self, sock, connection_type=ConnectionType.CLIENT)


@pytest.fixture
def proxied(server_factory, tmp_path):
    """The live server trusting 127.0.0.1 as its proxy, and Caddy in front of it."""
    server = server_factory(STACKPILOT_TRUSTED_PROXIES="127.0.0.1", MANAGEMENT_HOSTNAME=HOSTNAME)
    caddy = Caddy(
        tmp_path, f"127.0.0.1:{server.port}", MANAGEMENT_HOSTNAME=HOSTNAME, MANAGEMENT_TLS="tls internal"
    ).start()
    yield server, caddy
    caddy.stop()


def sign_in(server, caddy) -> tuple[requests.Session, requests.Response]:
    ensure_user(server.data_dir, "admin", "admin")
    s = caddy.session()
    page = s.get(caddy.url("/login"), timeout=10)
    assert page.status_code == 200 and "<html" in page.text
    token = CSRF_RE.search(page.text).group(1)
    r = s.post(
        caddy.url("/login"),
        data={"username": "admin", "password": TEST_PASSWORD, "csrf_token": token},
        headers={"Origin": caddy.origin},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code in (302, 303), (r.status_code, r.text[:300])
    return s, r


def recorded_clients(server) -> list[str]:
    with sqlite3.connect(Path(server.data_dir) / "stackpilot.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT client FROM sessions ORDER BY created_at")]


def test_pages_load_over_https_with_a_secure_session_cookie(proxied):
    server, caddy = proxied
    s, login = sign_in(server, caddy)
    cookie = login.headers["Set-Cookie"]
    assert "stackpilot_session=" in cookie
    assert "Secure" in cookie, cookie
    assert "HttpOnly" in cookie
    home = s.get(caddy.url("/"), timeout=10)
    assert home.status_code == 200 and "<html" in home.text
    assert "/login" not in home.url
    css = s.get(caddy.url("/static/app.css"), timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")


def test_app_sees_the_real_client_address_through_caddy(proxied):
    server, caddy = proxied
    sign_in(server, caddy)
    assert recorded_clients(server) == [CLIENT_IP]


def test_forwarded_headers_from_anyone_but_the_proxy_are_ignored(proxied):
    """The same headers sent straight to the app (not from 127.0.0.1) change nothing."""
    server, _ = proxied
    ensure_user(server.data_dir, "admin", "admin")
    s = requests.Session()
    s.mount("http://", _PinnedAdapter(None, CLIENT_IP))
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    page = s.get(server.url + "/login", headers=forged, timeout=10)
    token = CSRF_RE.search(page.text).group(1)
    r = s.post(
        server.url + "/login",
        data={"username": "admin", "password": TEST_PASSWORD, "csrf_token": token},
        headers={**forged, "Origin": server.url},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code in (302, 303), r.text[:300]
    assert "Secure" not in r.headers["Set-Cookie"]
    assert recorded_clients(server) == [CLIENT_IP]


def test_websocket_streams_through_caddy(proxied):
    server, caddy = proxied
    s, _ = sign_in(server, caddy)
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    ws = caddy.ws_connect("/api/ws/echo", {"Origin": caddy.origin, "Cookie": cookie})
    try:
        for i in range(20):
            ws.send(f"line {i} <b>")
            assert ws.receive(timeout=5) == f"line {i} <b>"
    finally:
        ws.close()


def test_websocket_from_another_origin_is_refused_through_caddy(proxied):
    server, caddy = proxied
    s, _ = sign_in(server, caddy)
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    with pytest.raises(WSConnectionError) as refused:
        caddy.ws_connect("/api/ws/echo", {"Origin": "https://evil.example", "Cookie": cookie})
    assert refused.value.status_code == 403


def adapted(**env: str) -> dict:
    out = subprocess.run(
        [CADDY, "adapt", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent", **env},
    )
    return json.loads(out.stdout)


def test_without_a_hostname_caddy_serves_the_lan_port():
    config = adapted()
    servers = config["apps"]["http"]["servers"]
    assert [s["listen"] for s in servers.values()] == [[":9009"]]
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False


def test_log_routes_are_never_buffered():
    config = json.dumps(adapted(MANAGEMENT_HOSTNAME="manage.example.com"))
    logs = config.index('"/logs*"')
    handler = config.rfind('"flush_interval": -1', 0, logs)
    assert handler != -1, "the /logs* route must proxy with flush_interval -1"
    assert '"host": ["manage.example.com"]' in config


@pytest.mark.docker
def test_log_websocket_streams_through_caddy(server_factory, open_stack, tmp_path):
    """The live log socket of a real service, followed through Caddy over wss."""
    # open_stack: the folder is named after the project, as Stackpilot expects.
    stack = open_stack(
        {
            "docker-compose.yml": """
services:
  talker:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "i=0; while true; do echo tick-$$i; i=$$((i+1)); sleep 0.2; done"]
"""
        }
    )
    stack.compose("up", "-d", "--pull", "never")
    server = server_factory(stack_dir=stack.dir, STACKPILOT_TRUSTED_PROXIES="127.0.0.1", MANAGEMENT_HOSTNAME=HOSTNAME)
    caddy = Caddy(
        tmp_path, f"127.0.0.1:{server.port}", MANAGEMENT_HOSTNAME=HOSTNAME, MANAGEMENT_TLS="tls internal"
    ).start()
    try:
        s, _ = sign_in(server, caddy)
        cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        ws = caddy.ws_connect("/logs/-/ws?s=talker", {"Origin": caddy.origin, "Cookie": cookie})
        try:
            seen: list[str] = []

            def ticks() -> int:
                frame = ws.receive(timeout=5)
                if frame:
                    seen.append(frame)
                return sum("tick-" in f for f in seen) >= 3

            wait_for(ticks, timeout=30, interval=0, message="log lines through Caddy")
        finally:
            ws.close()
    finally:
        caddy.stop()
