"""A real Docker engine for the tests: find it, or start dockerd, and a proxy that can kill it.

The proxy lets a test make the engine really disappear (connections refused) and come back,
without stopping the daemon every other test shares.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_SOCKET = "/var/run/docker.sock"
DOCKERD_LOG = Path(tempfile.gettempdir()) / "stackpilot-dockerd.log"


def engine_answers(sock_path: str = DEFAULT_SOCKET, timeout: float = 2.0) -> bool:
    """True when something at sock_path answers the Docker API ping."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.") and True
    except OSError:
        return False


def start_dockerd(timeout: float = 90.0) -> None:
    """Start dockerd in the background unless an engine already answers."""
    if engine_answers():
        return
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise RuntimeError("dockerd is not installed: run tests/prepare.sh (apt-get install docker.io)")
    log = open(DOCKERD_LOG, "ab")  # noqa: SIM115 - lives as long as dockerd
    subprocess.Popen(
        [dockerd, "--host", f"unix://{DEFAULT_SOCKET}"],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_answers():
            return
        time.sleep(0.3)
    tail = DOCKERD_LOG.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"dockerd did not answer within {timeout:.0f}s; its log ends:\n{tail}")


def close_all(listener: socket.socket | None, conns: set[socket.socket]) -> None:
    """Close a listening socket and every connection it forwarded; shutdown() first wakes a thread
    blocked in accept() or recv()."""
    for sock in ([listener] if listener is not None else []) + list(conns):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


class EngineProxy:
    """A Unix-socket forwarder in front of the real engine that a test can stop and restart.

    Stopped, its socket path refuses connections exactly like a dead daemon's.
    """

    def __init__(self, target: str = DEFAULT_SOCKET) -> None:
        self.target = target
        self.dir = tempfile.mkdtemp(prefix="sp-engine-proxy-")
        self.path = os.path.join(self.dir, "docker.sock")
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> EngineProxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.path):
            os.unlink(self.path)
        listener.bind(self.path)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and every forwarded connection; the path then refuses."""
        listener, self._listener = self._listener, None
        with self._lock:
            conns, self._conns = self._conns, set()
        close_all(listener, conns)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


if __name__ == "__main__":
    if sys.argv[1:] == ["start"]:
        start_dockerd()
        print("prepare: Docker engine answers at", DEFAULT_SOCKET)
    else:
        sys.exit("usage: python -m tests.support.engine start")
