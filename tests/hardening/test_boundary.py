"""Items 5, 8, 9 and 11 of issue 12 against the real server: no-store on every route, clear 4xx
for inputs that gave 500s, Origin by scheme/host/port, the Host allowlist (DNS rebinding), HSTS
behind HTTPS only, a health check that keeps the engine version to signed-in people, run output
for operators, and no traceback when a WebSocket client drops during the handshake."""

from __future__ import annotations

import base64
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import requests

from app import create_app
from app import settings as settings_module
from app.stack import backups
from app.store import Store
from tests.hardening.attacks import CheckoutServer
from tests.support.live import SourceAddressAdapter
from tests.support.live import free_port
from tests.support.live import wait_for

SAMPLES = {
    "user_id": "1",
    "run_id": "nope",
    "action": "start",
    "name": "web",
    "service": "web",
    "key": "SECRET",
    "signer": "nope",
    "filename": "app.css",
}


@pytest.fixture(scope="module")
def stack_server(chatty_server):
    """The chatty stack's server, with one .env backup to download."""
    folder = Path(chatty_server.env["STACKPILOT_STACK_DIR"])
    chatty_server.backup = backups.take_backup(folder, b"SECRET=old-secret-value\n", keep=30)
    return chatty_server


def _rules(tmp_path):
    app = create_app(
        {"SETTINGS": settings_module.from_env({"STACKPILOT_DATA_DIR": str(tmp_path / "m")}), "TESTING": True}
    )
    return list(app.url_map.iter_rules())


def test_every_route_says_no_store(stack_server: CheckoutServer, tmp_path):
    """Walks the url_map: every answer but our static files is `Cache-Control: no-store`,
    whatever its status (the .env backup download said `public, max-age=3600`)."""
    admin = stack_server.session()
    checked = []
    for rule in _rules(tmp_path):
        values = {arg: SAMPLES.get(arg, "x") for arg in rule.arguments}
        if rule.endpoint == "config.backup_download" or "backups/<name>" in rule.rule:
            values["name"] = stack_server.backup.name
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m, v=values: v[m.group(1)], rule.rule)
        if "GET" in rule.methods:  # headers only: some answers stream for as long as one listens
            r = admin.get(stack_server.url + path, timeout=30, allow_redirects=False, stream=True)
            r.close()
        else:  # no CSRF token: refused, but even the refusal must not be cached
            r = requests.post(stack_server.url + path, cookies=admin.cookies, timeout=30, allow_redirects=False)
        cache = r.headers.get("Cache-Control", "")
        if rule.endpoint == "static":
            assert "no-store" not in cache
            continue
        checked.append((path, r.status_code))
        assert cache == "no-store", (rule.rule, r.status_code, cache)
        assert r.status_code < 500, (rule.rule, r.status_code)
    assert any(p.endswith("/download") and code == 200 for p, code in checked), checked
    assert "Traceback" not in stack_server.log()


def test_origin_must_match_scheme_host_and_port(shared_server):
    server = shared_server
    s = server.session("origin-tester", "operator")
    port = server.port
    for origin in (
        f"https://127.0.0.1:{port}",
        f"http://127.0.0.1:{port + 1}",
        "http://127.0.0.1",
        f"http://evil.example:{port}",
    ):
        r = s.post(server.url + "/users", data={"csrf_token": s.csrf}, headers={"Origin": origin}, timeout=10)
        assert r.status_code == 403 and "Cross-site" in r.text, origin
    ok = s.post(server.url + "/logout", data={"csrf_token": s.csrf}, timeout=10, allow_redirects=False)
    assert ok.status_code == 302


def test_unknown_host_names_are_refused_even_on_the_claim_page(tmp_path):
    """DNS rebinding: a page on evil.example re-pointed at us sends `Host: evil.example`."""
    data = tmp_path / "data"
    data.mkdir()
    server = CheckoutServer(data_dir=data, env={"MANAGEMENT_HOSTNAME": "manage.example.test"}).start()
    try:
        for path in ("/setup/", "/login", "/api/health"):
            r = requests.get(server.url + path, headers={"Host": f"evil.example:{server.port}"}, timeout=10)
            assert r.status_code == 400 and r.headers["Cache-Control"] == "no-store", path
        for host in (
            f"127.0.0.1:{server.port}",
            f"localhost:{server.port}",
            "manage.example.test",
            f"[::1]:{server.port}",
        ):
            r = requests.get(server.url + "/setup/", headers={"Host": host}, timeout=10)
            assert r.status_code == 200 and "Claim the admin account" in r.text, host
    finally:
        server.stop()


def test_hsts_only_when_the_request_came_over_https(shared_server):
    server = shared_server  # trusts 127.0.0.1 as its proxy
    proxied = requests.get(server.url + "/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = requests.get(server.url + "/login", timeout=10)
    assert "Strict-Transport-Security" not in plain.headers
    untrusted = requests.Session()  # from 127.0.0.2, not the proxy: a forged header changes nothing
    untrusted.mount("http://", SourceAddressAdapter("127.0.0.2"))
    forged = untrusted.get(server.url + "/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert forged.status_code == 200 and "Strict-Transport-Security" not in forged.headers


def test_health_keeps_the_engine_version_for_signed_in_people(shared_server, docker_engine):
    server = shared_server
    anonymous = requests.get(server.url + "/api/health", timeout=10).json()
    assert anonymous["docker"] == "reachable" and "docker_version" not in anonymous
    assert server.admin.get(server.url + "/api/health", timeout=10).json()["docker_version"]


def test_inputs_that_gave_500s_get_clear_4xx(stack_server: CheckoutServer):
    server = stack_server
    admin = server.session()
    # Concurrent adds of one new name: exactly one account, the others told why.
    barrier = threading.Barrier(8)
    codes = []

    def add():
        barrier.wait()
        r = admin.post(
            server.url + "/users",
            timeout=60,
            data={"username": "twin", "password": "a-long-enough-password", "role": "viewer"},
        )
        codes.append((r.status_code, "already a user named" in r.text or "checking other passwords" in r.text))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # (429: the password-hash slots were busy for longer than the short wait: also a clear answer)
    assert {c for c, _ in codes} <= {200, 422, 429}, codes
    assert [c for c, _ in codes].count(200) == 1 and all(said for c, said in codes if c != 200), codes
    assert sum(1 for u in Store(Path(server.data_dir) / "stackpilot.sqlite3").users() if u.username == "twin") == 1
    # A 26-digit user id is nobody, not an SQLite overflow.
    for action, data in (
        ("role", {"role": "viewer"}),
        ("password", {"password": "a-long-enough-password"}),
        ("remove", {}),
    ):
        r = admin.post(server.url + f"/users/{'9' * 26}/{action}", data=data, timeout=10)
        assert r.status_code == 404, (action, r.status_code)
    # Stack-setting file names no file system accepts.
    for name in ("docker-compose.yml\x00.txt", "a" * 300, "x/" * 40 + "b" * 256):
        r = admin.post(
            server.url + "/stack/settings",
            timeout=30,
            allow_redirects=False,
            data={"project": server.project, "file": name, "csrf_token": admin.csrf},
        )
        assert r.status_code == 422 and "not a file" in r.text, (name[:20], r.status_code)
    log = server.log()
    assert "Traceback" not in log and "a" * 300 not in log


def test_compose_run_output_is_for_operators(shared_server):
    server = shared_server
    viewer = server.session("viewer", "viewer")
    operator = server.session("operator", "operator")
    for path in ("/stack/runs/some-run", "/stack/runs/some-run/panel"):
        assert viewer.get(server.url + path, timeout=10).status_code == 403
        assert operator.get(server.url + path, timeout=10).status_code == 404


def test_a_client_dropping_during_the_handshake_leaves_no_traceback(shared_server):
    server = shared_server
    s = server.admin
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    for i in range(40):
        conn = socket.create_connection(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        conn.sendall(
            (
                f"GET /api/ws/echo HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {server.url}\r\nCookie: {cookie}\r\n\r\n"
            ).encode()
        )
        if i % 2:
            conn.recv(64)  # drop right after the 101
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        conn.close()
    assert requests.get(server.url + "/api/health", timeout=10).status_code == 200
    wait_for(
        lambda: requests.get(server.url + "/api/health", timeout=5).json()["websockets"] == 0,
        timeout=15,
        message="sockets released",
    )
    assert "Traceback" not in server.log() and "Bad file descriptor" not in server.log()


def test_an_unreachable_tcp_engine_is_described_in_words(attack_server):
    port = free_port()  # nobody listens there
    server = attack_server(DOCKER_HOST=f"tcp://127.0.0.1:{port}")
    docker = requests.get(server.url + "/api/health", timeout=10).json()["docker"]
    assert docker == f"unreachable: nothing accepts connections at 127.0.0.1:{port} (engine stopped, or another port?)"
    assert "HTTPConnectionPool" not in server.log() and "Max retries" not in server.log()
