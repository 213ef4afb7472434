"""Access to the Docker engine: the only package that imports the Docker SDK.

Every SDK or transport error leaves this package as one of our typed errors
(EngineUnavailable, NotFound, ...), so callers never see docker's exception zoo.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import TypeVar

from app.errors import EngineUnavailable
from app.errors import NotFound
from app.errors import StackpilotError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)
T = TypeVar("T")

# Fast calls (ping, list, inspect) must not hang a page when the engine is wedged.
API_TIMEOUT = 10


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests -> urllib3 -> ssl/socket), outermost first."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(
            x for x in (getattr(e, "reason", None), e.__cause__, e.__context__, *e.args) if isinstance(x, BaseException)
        )


POOL_SIZE = 128  # >= STACKPILOT_THREADS' default (96): every worker may hold one engine connection


# The words for a local socket's failures, whether the SDK (its text names the OSError) or our own
# stdlib probe (the OSError itself) met them.
SOCKET_WORDS = {
    "FileNotFoundError": "no Docker socket at that path",
    "ConnectionRefusedError": "the Docker socket refused the connection (daemon stopped?)",
    "PermissionError": (
        "permission denied on the Docker socket: give the container the socket's group "
        "(group_add: DOCKER_GID = `stat -c %g /var/run/docker.sock` on the host)"
    ),
}
NO_ANSWER = "the Docker engine did not answer in time"
NOT_DOCKER = "the Docker socket answered, but not as a Docker engine"


def sdk_error(exc: BaseException, module: str, name: str) -> bool:
    """isinstance(exc, <module>.<name>) without importing the SDK: an exception of a module that was
    never imported cannot be in hand (start-up and /api/health run without docker and requests)."""
    mod = sys.modules.get(module)
    kind = getattr(mod, name, None) if mod is not None else None
    return kind is not None and isinstance(exc, kind)


def describe(exc: BaseException) -> str:
    """A one-line reason for an engine failure, without the SDK's noise."""
    text = str(exc)
    for marker, words in SOCKET_WORDS.items():
        if marker in text:
            return words
    if sdk_error(exc, "requests.exceptions", "Timeout"):
        return NO_ANSWER
    # tcp:// engines: the words under urllib3's "Max retries exceeded ... NewConnectionError(...)"
    chain = list(causes(exc))
    found = re.search(r"host='([^']+)', port=(\d+)", text)
    where = f" at {found.group(1)}:{found.group(2)}" if found else ""
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "[Errno 111]" in text:
        return f"nothing accepts connections{where} (engine stopped, or another port?)"
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return f"the engine's host name does not resolve{where}"
    if (
        any(isinstance(e, TimeoutError) or sdk_error(e, "requests.exceptions", "Timeout") for e in chain)
        or "timed out" in text
    ):
        return f"the Docker engine{where} did not answer in time (host down, or a firewall drops it)"
    if any(sdk_error(e, "requests.exceptions", "HTTPError") for e in chain) and "/version" in text:
        return "that address answers HTTP, but not as a Docker engine (wrong host or port?)"
    if "Max retries exceeded" in text or "HTTPConnectionPool" in text:
        return f"the Docker engine{where} cannot be reached"
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


@contextmanager
def engine_errors(what: str = "", describe: Callable[[BaseException], str] = describe) -> Iterator[None]:
    """Translate SDK/transport exceptions raised inside the block into our typed errors."""
    try:
        yield
    except StackpilotError:
        raise
    except Exception as e:
        if sdk_error(e, "docker.errors", "NotFound"):
            raise NotFound(f"{what or 'object'} not found", detail=describe(e)) from None
        if sdk_error(e, "docker.errors", "APIError"):
            raise StackpilotError(f"the Docker engine refused: {e.explanation or e}") from None
        if (
            isinstance(e, OSError)
            or sdk_error(e, "docker.errors", "DockerException")
            or sdk_error(e, "requests.exceptions", "RequestException")
        ):
            raise EngineUnavailable(describe(e)) from None
        raise


@dataclass(frozen=True)
class EngineState:
    """What the last call to an engine found, known without calling it (None: not tried yet)."""

    reachable: bool | None
    reason: str = ""
    since: float = 0.0


class Engine:
    """One Docker endpoint and its one lazily opened client (one connection pool), shared by every
    stack on it; reopened after the engine comes back.

    Subclasses (app/engine/remote.py) only change how the client is opened, how failures are
    worded and what Compose needs in its environment; a Swarm manager would be one more.
    """

    kind = "local"
    # After a failure, calls are refused for a while (doubling up to the cap) instead of each page
    # waiting for the transport to fail again. 0 = off: a local socket fails in microseconds.
    backoff_first = 0.0
    backoff_cap = 15.0

    def __init__(
        self,
        base_url: str | None = None,
        timeout: int = API_TIMEOUT,
        *,
        engine_id: str = "local",
        name: str = "This machine",
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.id = engine_id
        self.name = name
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._state = EngineState(None)
        self._backoff = 0.0
        self._down_until = 0.0
        self._probing = False
        self._gate = threading.Lock()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.id} {self.endpoint}>"

    @property
    def endpoint(self) -> str:
        """Where the engine is, for people: the URL without secrets."""
        return self.base_url or "the local Docker socket"

    def _open(self) -> docker.DockerClient:
        import docker  # the SDK (and requests under it, ~7 MB) loads with the first real engine call

        # One pooled connection per worker thread that may talk to the engine at once (the SDK's
        # default of 10 made "Connection pool is full, discarding connection" under load).
        if self.base_url:
            return docker.DockerClient(base_url=self.base_url, timeout=self.timeout, max_pool_size=POOL_SIZE)
        return docker.DockerClient.from_env(timeout=self.timeout, max_pool_size=POOL_SIZE)

    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                with engine_errors(describe=self.describe):
                    self._client = self._open()
            return self._client

    def describe(self, exc: BaseException) -> str:
        """The failure in words for this kind of transport."""
        return describe(exc)

    def compose_env(self) -> dict[str, str]:
        """Environment for a Compose subprocess acting on this engine (merged over os.environ)."""
        return {"DOCKER_HOST": self.base_url} if self.base_url else {}

    def state(self) -> EngineState:
        """The last call's outcome, without calling the engine: for marking its stacks unreachable."""
        return self._state

    def reset(self) -> None:
        """Forget a recorded failure so the next call really tries (an admin's explicit check)."""
        self._down_until = 0.0
        self._backoff = 0.0

    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        if self._state.reachable is not False:
            log.warning("engine %s (%s) unreachable: %s", self.id, self.endpoint, reason)
            self._state = EngineState(False, reason, time.time())
        elif reason != self._state.reason:
            self._state = EngineState(False, reason, self._state.since)
        if self.backoff_first:
            self._backoff = min(self.backoff_cap, self._backoff * 2 if self._backoff else self.backoff_first)
            self._down_until = now + self._backoff

    def _succeeded(self) -> None:
        if self._state.reachable is not True:
            if self._state.reachable is False:
                log.info("engine %s (%s) answers again", self.id, self.endpoint)
            self._state = EngineState(True, "", time.time())
        self._backoff = 0.0
        self._down_until = 0.0

    def call(self, fn: Callable[[docker.DockerClient], T], what: str = "") -> T:
        """Run fn(client) with error translation; the one funnel for SDK calls."""
        return self._guarded(lambda: fn(self.client()), what, self.describe)

    def _guarded(self, fn: Callable[[], T], what: str, words: Callable[[BaseException], str]) -> T:
        """Run fn with error translation, the backoff gate and the reachable/unreachable record."""
        probe = self._admit()
        try:
            with engine_errors(what, words):
                result = fn()
        except EngineUnavailable as e:
            self._failed(e.message)
            raise
        finally:
            if probe:
                self._probing = False
        self._succeeded()
        return result

    def _admit(self) -> bool:
        """Refuse at once while a failed engine backs off; after that, let ONE call probe it while
        the others keep failing fast. True when this call is that probe."""
        if not self.backoff_first or self._state.reachable is not False:
            return False
        with self._gate:
            wait = self._down_until - time.monotonic()
            if wait > 0 or self._probing:
                raise EngineUnavailable(f"{self.name}: {self._state.reason} (next try in {max(wait, 0):.0f} s)")
            self._probing = True
        return True

    def socket_path(self) -> str | None:
        """The unix socket this engine is reached through (as the SDK's from_env finds it), None
        for any other transport."""
        if type(self)._open is not Engine._open:  # remote kinds open their own transports
            return None
        url = self.base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        path = url[len("unix://") :] if url.startswith("unix://") else ""
        return path if path.startswith("/") else None

    def version(self) -> str:
        """The engine's version; raises EngineUnavailable with the reason when it cannot answer.

        A local socket is asked with the stdlib (GET /version): health checks and probes answer
        without loading the SDK, so a server nobody uses yet stays small and starts fast."""
        path = self.socket_path()
        if path is None:
            return self.call(lambda c: c.version().get("Version", "unknown"))
        return self._guarded(
            lambda: str(unix_get_json(path, "/version", self.timeout).get("Version", "unknown")),
            "",
            describe_socket,
        )

    def status(self) -> tuple[bool, str]:
        """(reachable, version or reason), never raising: for health checks and banners."""
        try:
            return True, self.version()
        except StackpilotError as e:
            return False, e.message

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def unix_get_json(path: str, url: str, timeout: float) -> dict:
    """GET url from the engine behind a unix socket with the stdlib, as a JSON object.

    OSError (missing socket, refused, permission, timeout) passes through; an answer that is not
    the engine's JSON, or an error status (a socket proxy refusing), raises EngineUnavailable."""
    import http.client
    import json

    from app.engine.unixhttp import UnixHTTPConnection
    from app.engine.unixhttp import refusal

    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", url, headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(1024 * 1024)
    except http.client.HTTPException as e:
        if isinstance(e, OSError):  # RemoteDisconnected is a ConnectionResetError
            raise
        raise EngineUnavailable(f"{NOT_DOCKER} ({e.__class__.__name__})") from None
    finally:
        conn.close()
    if response.status >= 400:
        raise EngineUnavailable(f"the Docker engine refused: {refusal(response.status, response.reason, body)}")
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise EngineUnavailable(NOT_DOCKER)
    return data


def describe_socket(exc: BaseException) -> str:
    """The words describe() gives for the same failure met through the SDK."""
    for e in causes(exc):
        if isinstance(e, TimeoutError):
            return NO_ANSWER
        for kind in (FileNotFoundError, ConnectionRefusedError, PermissionError):
            if isinstance(e, kind):
                return SOCKET_WORDS[kind.__name__]
    return describe(exc)
