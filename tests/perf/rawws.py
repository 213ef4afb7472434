"""A bare WebSocket client over a plain socket, for slow-reader scenarios.

simple-websocket's client reads the socket in a thread of its own, so it never stops reading; a
viewer that really falls behind must leave bytes in the kernel's buffers (TCP back-pressure) —
this one reads only when asked to.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct


class RawWS:
    def __init__(self, host: str, port: int, path: str, headers: dict[str, str], rcvbuf: int = 16384) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("handshake refused")
            self.buf += data
        head, rest = bytes(self.buf).split(b"\r\n\r\n", 1)
        self.buf = bytearray(rest)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            self.buf += data

    def receive(self, timeout: float = 5.0) -> str | None:
        """The next text message (pings answered, other control frames skipped); "" when none came
        within timeout; None when closed."""
        payload = self.receive_bytes(timeout)
        return None if payload is None else payload.decode()

    def receive_bytes(self, timeout: float = 5.0) -> bytes | None:
        """Like receive(), the message's bytes undecoded (a counting client need not decode)."""
        self.sock.settimeout(timeout)
        while True:
            try:
                self._need(2)
                b1, b2 = self.buf[0], self.buf[1]
                length, pos = b2 & 0x7F, 2
                if length == 126:
                    self._need(4)
                    length, pos = struct.unpack(">H", self.buf[2:4])[0], 4
                elif length == 127:
                    self._need(10)
                    length, pos = struct.unpack(">Q", self.buf[2:10])[0], 10
                self._need(pos + length)
            except TimeoutError:
                return b""
            except (ConnectionError, OSError):
                return None
            payload = bytes(self.buf[pos : pos + length])
            del self.buf[: pos + length]
            opcode = b1 & 0x0F
            if opcode == 0x9:  # ping: answer so the server keeps us
                self._send(0xA, payload)
            elif opcode == 0x8:
                return None
            elif opcode in (0x1, 0x0):
                return payload

    def items(self, timeout: float = 5.0) -> list | None:
        """The next message's items: [stamp, service, is_err, html] for each line of an L frame
        (app/logstream/wire.py), the control dicts of a batch; [] for nothing, None when closed."""
        raw = self.receive(timeout)
        if not raw:
            return None if raw is None else []
        if raw.startswith("L"):
            head, _, body = raw.partition("\n")
            rows = iter(body.split("\n"))
            out = []
            for service, err, count in json.loads(head[1:]):
                for _ in range(count):
                    stamp, _, html = next(rows).partition(" ")
                    out.append([stamp, service, err, html])
            return out
        return json.loads(raw).get("items", [])

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()
