"""Access to the Docker engine: the only package that imports the Docker SDK.

Every SDK or transport error leaves this package as one of our typed errors
(EngineUnavailable, NotFound, ...), so callers never see docker's exception zoo.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import docker.errors
import requests.exceptions

import docker
from app.errors import EngineUnavailable
from app.errors import NotFound
from app.errors import StackpilotError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Fast calls (ping, list, inspect) must not hang a page when the engine is wedged.
API_TIMEOUT = 10


def describe(exc: BaseException) -> str:
    """A one-line reason for an engine failure, without the SDK's noise."""
    text = str(exc)
    for marker in ("FileNotFoundError", "ConnectionRefusedError", "PermissionError"):
        if marker in text:
            return {
                "FileNotFoundError": "no Docker socket at that path",
                "ConnectionRefusedError": "the Docker socket refused the connection (daemon stopped?)",
                "PermissionError": (
                    "permission denied on the Docker socket: give the container the socket's group "
                    "(group_add: DOCKER_GID = `stat -c %g /var/run/docker.sock` on the host)"),
            }[marker]
    if isinstance(exc, requests.exceptions.Timeout):
        return "the Docker engine did not answer in time"
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


@contextmanager
def engine_errors(what: str = "") -> Iterator[None]:
    """Translate SDK/transport exceptions raised inside the block into our typed errors."""
    try:
        yield
    except StackpilotError:
        raise
    except docker.errors.NotFound as e:
        raise NotFound(f"{what or 'object'} not found", detail=describe(e)) from None
    except docker.errors.APIError as e:
        raise StackpilotError(f"the Docker engine refused: {e.explanation or e}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise EngineUnavailable(describe(e)) from None


class Engine:
    """One lazily opened Docker client shared by the app; reopened after the engine comes back."""

    def __init__(self, base_url: str | None = None, timeout: int = API_TIMEOUT) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                with engine_errors():
                    if self.base_url:
                        self._client = docker.DockerClient(base_url=self.base_url, timeout=self.timeout)
                    else:
                        self._client = docker.DockerClient.from_env(timeout=self.timeout)
            return self._client

    def call(self, fn: Callable[[docker.DockerClient], T], what: str = "") -> T:
        """Run fn(client) with error translation; the one funnel for SDK calls."""
        with engine_errors(what):
            return fn(self.client())

    def version(self) -> str:
        """The engine's version; raises EngineUnavailable with the reason when it cannot answer."""
        return self.call(lambda c: c.version().get("Version", "unknown"))

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
