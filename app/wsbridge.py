"""WebSockets under waitress: the upgrade bridge flask-sock needs.

waitress speaks plain HTTP/1.1 only. For a request carrying `Upgrade: websocket` our task hands
the connection's socket (a blocking dup) to the app as `environ['werkzeug.socket']`, which is
where flask-sock's simple-websocket looks for it. Once the app has written the 101 handshake on
that socket, waitress must write nothing more: the task swallows the app's dummy response and
closes the channel when the handler returns. A handshake the app refuses (401/403 before any
byte was sent) is answered by waitress as a normal HTTP response.

Each open WebSocket holds one waitress worker thread for its whole life: size `threads` for it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.server import MultiSocketServer
from waitress.task import WSGITask

log = logging.getLogger(__name__)
SEND_STALL = 10.0  # seconds a frame may wait for the one before it (ping interval 5 s: two missed)


class UpgradeSocket:
    """The dup'd client socket given to the app; remembers whether the app took it over."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.upgraded = False
        # simple-websocket sends frames from two threads (data and its pings) with send(): while a
        # big frame waits for a slow reader, a ping would land inside it. Whole frames, one at a time.
        self._send_lock = threading.Lock()
        self._progress = time.monotonic()  # when a frame last went out whole

    def send(self, data: bytes, *args) -> int:
        self.sendall(data, *args)
        return len(data)

    def sendall(self, data: bytes, *args) -> None:
        self.upgraded = True
        while not self._send_lock.acquire(timeout=1.0):
            if time.monotonic() - self._progress > SEND_STALL:
                # No frame went out for that long (a ping could not even be sent): the peer is
                # gone, as a missed pong would say. Shutting down also ends the send holding the lock.
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                raise OSError("the WebSocket peer stopped reading")
        try:
            self._sock.sendall(data, *args)
            self._progress = time.monotonic()
        finally:
            self._send_lock.release()

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class OpenSockets:
    """The WebSockets open right now, so shutdown can close them and tests can count them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[UpgradeSocket] = set()

    def add(self, s: UpgradeSocket) -> None:
        with self._lock:
            self._open.add(s)

    def discard(self, s: UpgradeSocket) -> None:
        with self._lock:
            self._open.discard(s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def close_all(self) -> int:
        """Shut every open WebSocket down; their handlers see the connection end and return."""
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(sockets)


OPEN_SOCKETS = OpenSockets()


class ClientGone(Exception):
    """The client dropped between sending the handshake and our taking the socket over."""


class WebSocketTask(WSGITask):
    """A WSGITask that lets the app take over the connection for a WebSocket upgrade."""

    upgrade: UpgradeSocket | None = None

    def get_environment(self):
        environ = super().get_environment()
        if self.upgrade is None and environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            try:
                # waitress's main loop closes the channel's socket as soon as the client drops;
                # dup() then fails with EBADF: nothing to serve, and nothing worth a traceback.
                dup = self.channel.socket.dup()
                dup.setblocking(True)
            except OSError:
                raise ClientGone from None
            self.upgrade = UpgradeSocket(dup)
            OPEN_SOCKETS.add(self.upgrade)
            environ["werkzeug.socket"] = self.upgrade
        return environ

    @property
    def taken_over(self) -> bool:
        return self.upgrade is not None and self.upgrade.upgraded

    def write(self, data: bytes) -> None:
        if self.taken_over:
            # The handshake and the frames went out on the socket; no HTTP response follows.
            self.wrote_header = True
            self.close_on_finish = True
            return
        super().write(data)

    def finish(self) -> None:
        if self.taken_over:
            self.close_on_finish = True
        else:
            super().finish()

    def service(self) -> None:
        try:
            super().service()
        except ClientGone:
            self.close_on_finish = True
            log.debug("WebSocket client left before the handshake was answered")
        finally:
            if self.upgrade is not None:
                OPEN_SOCKETS.discard(self.upgrade)
                if self.taken_over:
                    self.close_on_finish = True
                    self.upgrade.close()


class WebSocketChannel(HTTPChannel):
    task_class = WebSocketTask


def install(server) -> None:
    """Make every listening server created by waitress.create_server use our channel."""
    servers = [server]
    if isinstance(server, MultiSocketServer):
        servers = [s for s in server.map.values() if isinstance(s, BaseWSGIServer)]
    for s in servers:
        s.channel_class = WebSocketChannel
