"""Item 4 (and 7, 11) of issue 12 against the real server: one viewer cannot take the worker
threads from everyone (per-user caps on downloads and log sockets, a reserve for pages), a log
socket is not activity (it closes when the session idles out), no pool-full warnings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from simple_websocket import ConnectionClosed

from app.store import Store
from tests.hardening.attacks import CheckoutServer
from tests.hardening.attacks import downloads_while_pages
from tests.support.live import ensure_user


def _pooled(session: requests.Session, size: int = 256) -> requests.Session:
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=size)
    session.mount("http://", adapter)
    return session


def test_a_viewer_downloading_200_times_leaves_the_pages_answering(chatty_server: CheckoutServer):
    server = chatty_server
    viewer = _pooled(server.session("viewer", "viewer"))
    admin = server.session()
    result = downloads_while_pages(server, viewer, admin, n=200, rounds=8, query="tail=1000")
    print(
        f"\n200 concurrent downloads by one viewer: {result['downloads']}; admin pages: "
        f"p95 {result['page_p95'] * 1000:.0f} ms, max {result['page_max'] * 1000:.0f} ms, "
        f"{result['pages_failed']}/{result['pages']} failed"
    )
    assert result["pages_failed"] == 0 and result["page_p95"] < 3.0
    assert result["downloads"].get(200, 0) >= 2 and result["downloads"].get(429, 0) >= 150
    assert set(result["downloads"]) <= {200, 429}
    assert "You already have 2 downloads open" in result["refusal"]
    log = server.log()
    assert "Connection pool is full" not in log and "Traceback" not in log


def _receive_json(ws, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=0.5)
        if raw is None:
            continue
        data = json.loads(raw)
        if isinstance(data, dict):
            return data
    raise AssertionError("no control message")


def test_log_sockets_per_person_and_the_refusal_names_the_holders(chatty_server: CheckoutServer):
    server = chatty_server  # STACKPILOT_MAX_LOG_SOCKETS=10
    viewer = server.session("viewer", "viewer")
    ensure_user(server.data_dir, "other", "viewer")
    other = server.session("other", "viewer")
    sockets = []
    try:
        for _ in range(8):
            ws = server.ws_connect("/logs/-/ws?tail=1", viewer)
            assert _receive_json(ws)["t"] == "hello"
            sockets.append(ws)
        ninth = server.ws_connect("/logs/-/ws?tail=1", viewer)
        refusal = _receive_json(ninth)
        assert refusal["t"] == "full" and "You already have 8 log views open" in refusal["text"]
        for _ in range(2):  # someone else still gets theirs, up to the total of 10
            ws = server.ws_connect("/logs/-/ws?tail=1", other)
            assert _receive_json(ws)["t"] == "hello"
            sockets.append(ws)
        ensure_user(server.data_dir, "third", "viewer")
        third = server.ws_connect("/logs/-/ws?tail=1", server.session("third", "viewer"))
        text = _receive_json(third)["text"]
        assert "Too many open log views (10)" in text and "viewer: 8 log views" in text and "other: 2" in text
    finally:
        for ws in sockets:
            _close(ws)


def test_an_open_log_socket_does_not_keep_the_session_alive(chatty_server: CheckoutServer):
    server = chatty_server
    ensure_user(server.data_dir, "idler", "viewer")
    idler = server.session("idler", "viewer")
    store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
    mine = "user_id = (SELECT id FROM users WHERE username = 'idler')"
    ws = server.ws_connect("/logs/-/ws?tail=1", idler)
    try:
        assert _receive_json(ws)["t"] == "hello"
        conn = store._conn()
        # Idle for 100 minutes of the default 120: the socket's session checks must not touch it.
        conn.execute(f"UPDATE sessions SET last_seen = ? WHERE {mine}", (time.time() - 100 * 60,))
        time.sleep(6)  # one session re-check of the socket (every 5 s)
        seen = conn.execute(f"SELECT last_seen FROM sessions WHERE {mine}").fetchone()[0]
        assert time.time() - seen > 99 * 60
        conn.execute(f"UPDATE sessions SET last_seen = ? WHERE {mine}", (time.time() - 121 * 60,))  # idle out
        closed = False
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not closed:
            try:
                raw = ws.receive(timeout=0.5)
                closed = bool(raw) and "signed out" in raw
            except ConnectionClosed:
                closed = True
        assert closed, "the socket outlived its session"
    finally:
        _close(ws)


def _close(ws) -> None:
    try:
        ws.close()
    except ConnectionClosed:
        pass
