"""The HTTP transports of remote engines (app/engine/remote.py), on requests and urllib3.

Kept apart so that importing the engine package (every start-up) does not load requests, urllib3
and the SDK: this module is imported when a remote engine opens its client, not before.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.util


class FastConnectAdapter(requests.adapters.HTTPAdapter):
    """Splits the SDK's single timeout: connect within `connect_timeout`, then read as long as the
    call needs (a stop with a grace period waits longer than a list)."""

    def __init__(self, connect_timeout: float, **kwargs) -> None:
        self.connect_timeout = connect_timeout
        super().__init__(**kwargs)

    def send(self, request, stream=False, timeout=None, **kwargs):
        if isinstance(timeout, int | float):
            timeout = (min(self.connect_timeout, timeout), timeout)
        return super().send(request, stream=stream, timeout=timeout, **kwargs)


class SSHConnection(urllib3.connection.HTTPConnection):
    """HTTP over an ssh process running `docker system dial-stdio`, through a socketpair, so the
    socket has real timeouts and makefile()."""

    def __init__(self, *args, argv: list[str], on_exit, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.argv = argv
        self.on_exit = on_exit
        self.proc: subprocess.Popen | None = None
        self.errors = None

    def connect(self) -> None:
        ours, theirs = socket.socketpair()
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=theirs, stdout=theirs, stderr=self.errors, start_new_session=True, close_fds=True
            )
        finally:
            theirs.close()
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        ours.settimeout(timeout)
        self.sock = ours

    def close(self) -> None:
        super().close()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.errors is not None:
            self.errors.seek(0)
            text = self.errors.read(8192).decode(errors="replace")
            self.errors.close()
            self.errors = None
            if proc.returncode not in (0, -15) and text.strip():
                self.on_exit(text)


class SSHPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = SSHConnection


class RetryStale(urllib3.util.Retry):
    """One more try on a fresh ssh connection when a pooled one turns out closed (its remote end
    died meanwhile), so the failure carries ssh's own words. Idempotent requests only (urllib3's
    default), and never after a read timeout (a wedged engine must not cost twice)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            return self.new(total=0, read=0).increment(method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)


class SSHAdapter(requests.adapters.HTTPAdapter):
    """One pool of ssh connections for the engine, whatever the request URL."""

    def __init__(self, argv: list[str], timeout: float, on_exit, maxsize: int = 4) -> None:
        super().__init__(max_retries=RetryStale(total=1, connect=1, read=1, redirect=0, status=0, other=0))
        self.pool = SSHPool("localhost", timeout=timeout, maxsize=maxsize, argv=argv, on_exit=on_exit)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self.pool

    def get_connection(self, url, proxies=None):
        return self.pool

    def request_url(self, request, proxies):
        return request.path_url

    def close(self) -> None:
        self.pool.close()
