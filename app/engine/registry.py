"""Every Docker engine Stackpilot talks to, by id: the local one ("local") and those an admin adds.

One Engine (and so one connection pool) per endpoint, shared by every stack on it. Stacks name
their engine by id; the web context resolves it here per request.
"""

from __future__ import annotations

import threading

from app.engine import Engine
from app.errors import NotFound

LOCAL = "local"


class EngineRegistry:
    """Engines by id. `get` is the one way a request reaches an engine."""

    def __init__(self, local: Engine) -> None:
        self._engines: dict[str, Engine] = {LOCAL: local}
        self._lock = threading.Lock()

    @property
    def local(self) -> Engine:
        return self._engines[LOCAL]

    def get(self, engine_id: str | None) -> Engine:
        with self._lock:
            engine = self._engines.get(engine_id or LOCAL)
        if engine is None:
            raise NotFound(f"no engine named {engine_id!r}")
        return engine

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._engines)

    def close(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
        for engine in engines:
            engine.close()
