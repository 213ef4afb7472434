"""The WebSocket bridge under the real waitress server, with real clients."""

import signal
import socket
import threading
import time

import pytest
import requests
from simple_websocket import ConnectionClosed
from simple_websocket import ConnectionError as HandshakeRefused

from tests.support.live import wait_for


def _open(server, session):
    return server.ws_connect("/api/ws/echo", session)


def _open_count(server) -> int:
    return requests.get(server.url + "/api/health", timeout=5).json()["websockets"]


def test_echo_round_trip(server):
    ws = _open(server, server.session())
    try:
        ws.send("hello")
        assert ws.receive(timeout=5) == "hello"
        ws.send("<b>second</b>")
        assert ws.receive(timeout=5) == "<b>second</b>"
    finally:
        ws.close()


def test_plain_http_keeps_working_on_other_connections_after_a_socket_closes(server):
    session = server.session()
    ws = _open(server, session)
    ws.send("x")
    assert ws.receive(timeout=5) == "x"
    ws.close()
    assert session.get(server.url + "/api/health", timeout=5).status_code == 200


def test_client_drop_frees_the_thread(server):
    ws = _open(server, server.session())
    ws.send("ping")
    assert ws.receive(timeout=5) == "ping"
    assert _open_count(server) == 1
    # Drop the TCP connection without a close frame, as a crashed browser would.
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    wait_for(lambda: _open_count(server) == 0, timeout=10, message="socket released")


def test_anonymous_handshake_is_refused(server):
    with pytest.raises(HandshakeRefused, match="401|403"):
        server.ws_connect("/api/ws/echo")
    assert requests.get(server.url + "/api/health", timeout=5).status_code == 200


def test_foreign_origin_handshake_is_refused(server):
    session = server.session()
    with pytest.raises(HandshakeRefused, match="401|403"):
        server.ws_connect("/api/ws/echo", session, origin="http://evil.example")


def test_fifty_sockets_while_health_answers(server):
    session = server.session()
    sockets = [_open(server, session) for _ in range(50)]
    try:
        wait_for(lambda: _open_count(server) == 50, message="50 open sockets")
        for i, ws in enumerate(sockets):
            ws.send(f"m{i}")
        for i, ws in enumerate(sockets):
            assert ws.receive(timeout=10) == f"m{i}"
        for _ in range(20):
            assert requests.get(server.url + "/api/health", timeout=2).status_code == 200
    finally:
        for ws in sockets:
            ws.close()
    wait_for(lambda: _open_count(server) == 0, message="all sockets released")


def test_sigterm_closes_open_sockets_and_exits_quickly(server):
    session = server.session()
    sockets = [_open(server, session) for _ in range(5)]
    closed = []

    def reader(ws):
        try:
            while ws.receive(timeout=30) is not None:
                pass
        except ConnectionClosed:
            pass
        closed.append(ws)

    threads = [threading.Thread(target=reader, args=(ws,), daemon=True) for ws in sockets]
    for t in threads:
        t.start()
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=5)
    assert time.monotonic() - started < 5
    wait_for(lambda: len(closed) == 5, timeout=5, message="clients saw their sockets close")
