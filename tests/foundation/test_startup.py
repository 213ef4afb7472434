"""Start-up stays small: the first /api/health needs no Docker SDK, and the stdlib probe of the
local socket words each failure as the SDK path does (issue 17: idle RSS, cold start)."""

import json
import socket
import subprocess
import sys
import threading

import pytest
from flask import url_for

from app import ROOT
from app.engine import Engine
from app.web.context import LazyBuildRule

FIRST_HEALTH = """
import json, sys
from app import create_app
from app import settings
app = create_app({"SETTINGS": settings.from_env({"STACKPILOT_DATA_DIR": sys.argv[1]}), "TESTING": True})
body = app.test_client().get("/api/health").get_json()
heavy = [m for m in ("docker", "requests", "urllib3") if m in sys.modules]
print(json.dumps({"health": body, "loaded": heavy}))
"""


@pytest.mark.docker
def test_first_health_answers_without_loading_the_sdk(tmp_path, docker_engine):
    done = subprocess.run(
        [sys.executable, "-c", FIRST_HEALTH, str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["health"]["docker"] == "reachable" and result["health"]["status"] == "ok"
    assert result["loaded"] == []


def _listening(path, reply: bytes | None):
    """A unix socket at path that answers every request with reply (None: never answers)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(8)
    held = []

    def run():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if reply is None:
                held.append(conn)
                continue
            conn.recv(65536)
            conn.sendall(reply)
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return srv, held


def test_the_socket_probe_words_each_failure(tmp_path):
    def status(path, timeout=5):
        engine = Engine(f"unix://{path}", timeout=timeout)
        result = engine.status()
        assert engine.state().reachable is result[0]
        return result

    assert status(tmp_path / "missing.sock") == (False, "no Docker socket at that path")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()  # the file stays, nobody listens: refused
    assert status(tmp_path / "dead.sock") == (False, "the Docker socket refused the connection (daemon stopped?)")
    servers = [
        _listening(tmp_path / "mute.sock", None),
        _listening(tmp_path / "ssh.sock", b"SSH-2.0-OpenSSH_9.2\r\n"),
        _listening(tmp_path / "web.sock", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        _listening(
            tmp_path / "proxy.sock",
            b'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n{"message":"not here"}\r\n',
        ),
        _listening(
            tmp_path / "engine.sock",
            b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{"Version":"99.0.1"}\n',
        ),
    ]
    try:
        assert status(tmp_path / "mute.sock", timeout=1) == (False, "the Docker engine did not answer in time")
        reachable, words = status(tmp_path / "ssh.sock")
        assert not reachable and words.startswith("the Docker socket answered, but not as a Docker engine")
        assert status(tmp_path / "web.sock") == (False, "the Docker socket answered, but not as a Docker engine")
        assert status(tmp_path / "proxy.sock") == (False, "the Docker engine refused: not here")
        assert status(tmp_path / "engine.sock") == (True, "99.0.1")
    finally:
        for srv, held in servers:
            srv.close()
            for conn in held:
                conn.close()


def test_lazy_url_builders_build_what_werkzeug_builds(app):
    """Every rule's builder, written on first use, gives werkzeug's own answer (a guard on the
    private builder API LazyBuildRule relies on)."""
    from werkzeug.routing import Rule

    rules = list(app.url_map.iter_rules())
    assert len(rules) > 100 and all(isinstance(r, LazyBuildRule) for r in rules if r.endpoint != "static")
    for rule in rules:
        values = {name: "1" for name in rule.arguments if name not in (rule.defaults or {})}
        eager = Rule(rule.rule, endpoint=rule.endpoint, defaults=rule.defaults, methods=rule.methods)
        eager.bind(app.url_map.__class__(converters=app.url_map.converters))
        for unknown in (True, False):
            assert rule.build({**values, "q": "a b"}, unknown) == eager.build({**values, "q": "a b"}, unknown), rule
    with app.test_request_context("/"):
        assert url_for("services.index") == "/services"
        assert url_for("services.index", stack="media") == "/s/media/services"
