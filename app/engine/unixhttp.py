"""HTTP to the local engine's unix socket with the standard library, where the SDK costs too much:
the health probe (no SDK at start-up) and followed logs (HTTP/1.0: the engine then sends a plain
body instead of one chunk per message)."""

from __future__ import annotations

import http.client
import json
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """An http.client connection to a unix socket; http10=True asks in HTTP/1.0 (a followed log
    comes as a plain body, the connection closes at its end)."""

    def __init__(self, path: str, timeout: float, http10: bool = False) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path
        if http10:
            self._http_vsn, self._http_vsn_str = 10, "HTTP/1.0"

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def refusal(status: int, reason: str, body: bytes) -> str:
    """The engine's words for an error answer: its JSON message, else the start of the body."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    message = data.get("message") if isinstance(data, dict) else None
    return message or body.decode("utf-8", "replace").strip()[:300] or f"{status} {reason}"
