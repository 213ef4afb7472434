"""The terminal socket on the real server: a real exec with a TTY in a real container."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from simple_websocket import ConnectionError as HandshakeRefused

from app.store import Store
from tests.shell.conftest import Term

pytestmark = pytest.mark.docker


def open_term(server, session, query: str = "s=box") -> Term:
    return Term(server.ws_connect("/shell/-/ws?" + query, session))


def audit(server) -> list[tuple[str, str, str, str]]:
    store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
    return [(e.username, e.action, e.target, e.detail) for e in store.audit_events(50) if e.action.startswith("shell.")]


def test_echo_resize_and_audit(shell_server, box):
    server = shell_server(box)
    session = server.session()
    term = open_term(server, session, "s=box&cols=100&rows=30")
    try:
        term.until(lambda t: "hello" in t.kinds(), message="hello")
        hello = term.messages[0]
        # busybox has no bash: the first shell that exists is sh; the working dir is the service's
        assert hello["shell"] == "sh" and hello["workdir"] == "/srv" and hello["user"] == "root"
        assert hello["container"].startswith(box.project)
        term.type("echo hello-$((6*7))\r")
        term.until(lambda t: b"hello-42" in t.out, message="echo output")
        term.type("stty size\r")
        term.until(lambda t: b"30 100" in t.out, message="initial size")
        term.ws.send(json.dumps({"t": "resize", "cols": 120, "rows": 40}))
        term.type("stty size\r")
        term.until(lambda t: b"40 120" in t.out, message="resized")
        term.type("exit 3\r")
        term.until(lambda t: "exit" in t.kinds(), message="exit message")
        assert term.messages[-1] == {"t": "exit", "code": 3}
        term.until(lambda t: t.closed, message="socket closed")
    finally:
        term.close()
    # who opened which container's shell, and for how long; never what was typed
    rows = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(rows) < 2:
        rows = audit(server)
    actions = sorted(r[1] for r in rows)
    assert actions == ["shell.close", "shell.open"]
    assert all(r[0] == "admin" and "box (" in r[2] for r in rows)
    assert not any("hello" in r[3] or "stty" in r[3] for r in rows)
    close = next(r for r in rows if r[1] == "shell.close")
    assert " s; shell ended (exit 3)" in close[3]


def test_idle_timeout_and_sign_out_close_it(shell_server, box):
    server = shell_server(box, {"idle_seconds": 2})
    session = server.session()
    term = open_term(server, session)
    try:
        term.until(lambda t: "hello" in t.kinds(), message="hello")
        started = time.monotonic()
        term.until(lambda t: t.closed, timeout=8, message="idle close")
        assert 1.5 < time.monotonic() - started < 6
        assert term.messages[-1]["t"] == "closed" and "without typing" in term.messages[-1]["text"]
    finally:
        term.close()

    server2_session = server.session()
    store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
    store.set_setting("shell", {"idle_seconds": 600})
    term = open_term(server, server2_session)
    try:
        term.until(lambda t: "hello" in t.kinds(), message="hello")
        r = server2_session.post(server.url + "/logout", timeout=10, allow_redirects=False)
        assert r.status_code in (302, 303)
        term.until(lambda t: t.closed, timeout=8, message="closed after sign-out")
        assert "signed out" in term.messages[-1]["text"]
    finally:
        term.close()


def test_who_may_open_and_what_is_refused(shell_server, box):
    server = shell_server(box)
    # an operator is refused unless the setting grants operators; a viewer always
    operator = server.session("olga", "operator")
    with pytest.raises(HandshakeRefused) as refused:
        open_term(server, operator)
    assert refused.value.status_code == 403
    assert requests.get(server.url + "/shell/box", cookies=operator.cookies, timeout=10).status_code == 403
    # another origin, no session, an unknown service: refused at the handshake
    admin = server.session()
    with pytest.raises(HandshakeRefused) as refused:
        server.ws_connect("/shell/-/ws?s=box", admin, origin="http://evil.example")
    assert refused.value.status_code == 403
    with pytest.raises(HandshakeRefused) as refused:
        server.ws_connect("/shell/-/ws?s=box")
    assert refused.value.status_code == 401
    with pytest.raises(HandshakeRefused) as refused:
        open_term(server, admin, "s=nope")
    assert refused.value.status_code == 404
    # a stopped container offers no shell and says why; a missing shell is named
    page = admin.get(server.url + "/shell/idle", timeout=10)
    assert page.status_code == 200 and "is not running" in page.text and 'id="shell-term"' not in page.text
    term = open_term(server, admin, "s=idle")
    try:
        term.until(lambda t: t.closed, message="refused")
        assert term.messages[-1]["t"] == "error" and "is not running" in term.messages[-1]["text"]
    finally:
        term.close()
    term = open_term(server, admin, "s=box&shell=bash")
    try:
        term.until(lambda t: t.closed, message="refused")
        assert "There is no bash" in term.messages[-1]["text"]
    finally:
        term.close()
    # the per-user cap (2 by default): the third is told who holds what
    held = [open_term(server, admin) for _ in range(2)]
    try:
        for t in held:
            t.until(lambda x: "hello" in x.kinds(), message="hello")
        third = open_term(server, admin)
        third.until(lambda t: t.closed, message="refused")
        assert "hello" not in third.kinds()
        # the words come before the close frame; a loaded machine may lose them to the TCP reset
        if third.messages:
            assert third.messages[-1]["t"] == "full" and "2 terminals" in third.messages[-1]["text"]
    finally:
        for t in held:
            t.close()
    # granted operators get a shell
    Store(Path(server.data_dir) / "stackpilot.sqlite3").set_setting("shell", {"operators": True})
    term = open_term(server, operator)
    try:
        term.until(lambda t: "hello" in t.kinds(), message="operator hello")
    finally:
        term.close()
