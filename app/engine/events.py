"""The engine's event stream (`GET /events`), one listener per engine, shared by every viewer.

Why: a page that polls learns of a change made elsewhere (`docker stop` on the host) only when
its timer fires, and every open page asks the engine again and again. One long-lived request per
engine delivers each container event once; the listener hands the compose project it concerns
to every subscription interested in it, and viewers wake up only for their project.

Lifetime: the thread starts with the first subscription and ends IDLE_AFTER seconds after the
last one closes (its request closed with it). When the engine goes away the listener retries with
a growing pause (RETRY_FIRST doubling to RETRY_CAP) and, once back, tells every subscription
`RECONNECTED` (anything may have changed meanwhile).

API:
- ``EventListener(engine)``; ``listener.subscribe(project=None) -> Subscription`` (None: every project)
- ``Subscription.wait(timeout) -> set[str]``: projects changed since the last call (RECONNECTED when
  the stream came back); empty after timeout. ``Subscription.close()``.
- ``listener.connected``, ``listener.error``, ``listener.connects`` (how many times it connected),
  ``listener.stop()``.
- ``listener.keep(seconds)``: keep the stream open that long without a subscription (a polled
  page's list cache relies on it); ``listener.token(project)``: a value that stays equal while the
  stream stayed connected and no event of the project (nor a reconnect) arrived, None while not
  connected. A cached answer stored under a token taken BEFORE asking the engine is still right
  while the token is unchanged (an event during the question changes it).
  ``listener.changed(project, old, new) -> set[str] | None``: the containers whose events made
  token `old` into `new` (None when that is not known: another connection, or too many).
- ``EventListeners``: one listener per engine id, created on first use.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque

from app.engine import Engine
from app.engine import engine_errors
from app.engine.logs import LogStream
from app.errors import StackpilotError

log = logging.getLogger(__name__)
_serials = itertools.count(1)  # tokens of two listeners (two apps in one process) never match

PROJECT_LABEL = "com.docker.compose.project"
RECONNECTED = "*reconnected*"
IDLE_AFTER = 5.0
RETRY_FIRST = 0.5
RETRY_CAP = 5.0
CHANGES_KEPT = 64  # container ids of the latest events, per project (changed())
PROJECTS_KEPT = 500  # projects whose event counts are kept (a busy test engine makes new ones all day)
TOKEN_SETTLE = 0.5  # seconds after connecting before token() vouches for anything
# Events that change what a table shows (exec_*, attach, top, resize... do not).
ACTIONS = {
    "create",
    "start",
    "restart",
    "stop",
    "die",
    "kill",
    "pause",
    "unpause",
    "destroy",
    "oom",
    "rename",
    "update",
    "health_status",
}


class Subscription:
    """One viewer's interest in a project's events."""

    def __init__(self, listener: EventListener, project: str | None) -> None:
        self.listener = listener
        self.project = project
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self.closed = False

    def _notify(self, project: str) -> None:
        with self._cond:
            self._pending.add(project)
            self._cond.notify_all()

    def wait(self, timeout: float) -> set[str]:
        """Projects changed since the last call (waits up to timeout for the first)."""
        with self._cond:
            if not self._pending and not self.closed:
                self._cond.wait(timeout)
            pending, self._pending = self._pending, set()
            return pending

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self.listener._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventListener:
    """Owns one thread and one `/events` request while anyone subscribes."""

    def __init__(self, engine: Engine, idle_after: float = IDLE_AFTER) -> None:
        self.engine = engine
        self.idle_after = idle_after
        self.connected = False
        self.error = ""
        self.connects = 0
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: LogStream | None = None
        self._idle_since = 0.0
        self._lease_until = 0.0
        self._client = None
        self._seen: dict[str, int] = {}  # events per project since start (token)
        self._changes: dict[str, deque[tuple[int, str]]] = {}  # (event number, container id)
        self._epoch = 0  # reconnects and forgotten projects (token)
        self._connected_at = 0.0
        self._serial = next(_serials)

    def subscribe(self, project: str | None = None) -> Subscription:
        sub = Subscription(self, project)
        with self._lock:
            self._subs.add(sub)
            self._start_locked()
        return sub

    def keep(self, seconds: float) -> None:
        """Keep the stream open `seconds` more (then IDLE_AFTER) though nobody subscribes."""
        with self._lock:
            self._lease_until = max(self._lease_until, time.monotonic() + seconds)
            self._start_locked()

    def token(self, project: str) -> tuple | None:
        """Equal while connected with no event of `project` in between; None while not connected
        (and for TOKEN_SETTLE after connecting: the engine sends the answer's headers before it
        subscribes the stream to its events, so an event in that moment is never delivered)."""
        if not self.connected or time.monotonic() - self._connected_at < TOKEN_SETTLE:
            return None
        with self._lock:  # _publish moves the project to the end (pop, then insert) under it
            return (self._serial, self.connects, self._epoch, self._seen.get(project, 0))

    def changed(self, project: str, old: tuple, new: tuple) -> set[str] | None:
        """Ids of the containers whose events lie between two tokens of this project, or None
        when they are not known (tokens of another connection, or older than CHANGES_KEPT)."""
        if old[:3] != new[:3] or new[3] < old[3]:
            return None
        with self._lock:
            kept = [(n, cid) for n, cid in self._changes.get(project, ()) if old[3] < n <= new[3]]
        if len(kept) != new[3] - old[3] or not all(cid for _, cid in kept):
            return None
        return {cid for _, cid in kept}

    def _start_locked(self) -> None:
        if not self._stop.is_set() and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name=f"events-{self.engine.id}", daemon=True)
            self._thread.start()

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)
            if not self._subs:
                self._idle_since = time.monotonic()
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._close_stream()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    # -- the thread ------------------------------------------------------------------------
    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def _open(self) -> LogStream:
        if self._client is None:
            with engine_errors("events"):
                self._client = self.engine._open()  # our own connection: the stream holds it for hours
        api = self._client.api
        params = {"filters": json.dumps({"type": ["container"]})}
        with engine_errors("events"):
            response = api._get(api._url("/events"), params=params, stream=True)
            api._raise_for_status(response)
        return LogStream(response, tty=True)  # newline-separated JSON documents

    def _publish(self, project: str, container_id: str = "") -> None:
        with self._lock:
            if project == RECONNECTED:
                self._epoch += 1
            else:  # the project moves to the end: the first ones are the longest quiet
                n = self._seen[project] = self._seen.pop(project, 0) + 1
                changes = self._changes[project] = self._changes.pop(project, None) or deque(maxlen=CHANGES_KEPT)
                changes.append((n, container_id))
                if len(self._seen) > PROJECTS_KEPT:  # forgetting one resets its count: no token may hold
                    quiet = next(iter(self._seen))
                    del self._seen[quiet], self._changes[quiet]
                    self._epoch += 1
            subs = [s for s in self._subs if s.project is None or s.project == project or project == RECONNECTED]
        for s in subs:
            s._notify(project)

    def _idle(self) -> bool:
        with self._lock:
            return not self._subs and time.monotonic() - max(self._idle_since, self._lease_until) >= self.idle_after

    def _run(self) -> None:
        retry = RETRY_FIRST
        watchdog = None
        try:
            while not self._stop.is_set() and not self._idle():
                try:
                    stream = self._open()
                except StackpilotError as e:
                    self.connected = False
                    self.error = e.message
                    self._drop_client()
                    self._wake.wait(retry)
                    self._wake.clear()
                    retry = min(RETRY_CAP, retry * 2)
                    continue
                self._stream = stream
                reconnect = self.connects > 0
                self.connects += 1
                self._connected_at = time.monotonic()
                self.connected = True
                self.error = ""
                retry = RETRY_FIRST
                if reconnect:
                    self._publish(RECONNECTED)
                watchdog = threading.Thread(target=self._watch_idle, args=(stream,), daemon=True, name="events-idle")
                watchdog.start()
                try:
                    for batch in stream.batches():
                        for _kind, line in batch:
                            self._handle(line)
                except StackpilotError as e:
                    self.error = e.message
                finally:
                    self.connected = False
                    self._close_stream()
                    stream.close()
                if not self._stop.is_set() and not self._idle():
                    self._drop_client()
                    self._wake.wait(RETRY_FIRST)
                    self._wake.clear()
        except Exception:  # never let the listener die silently
            log.exception("event listener of %s failed", self.engine.id)
        finally:
            self.connected = False
            self._close_stream()
            self._drop_client()
            with self._lock:
                self._thread = None
                wanted = bool(self._subs) or time.monotonic() < self._lease_until
                restart = wanted and not self._stop.is_set()
            if restart:  # a subscription arrived while we were leaving
                with self._lock:
                    self._thread = threading.Thread(target=self._run, name=f"events-{self.engine.id}", daemon=True)
                    self._thread.start()

    def _watch_idle(self, stream: LogStream) -> None:
        """Ends a quiet stream once nobody listens (the reader is blocked in recv until then)."""
        while not stream.closed:
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set() or self._idle():
                stream.close()
                return

    def _handle(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        action = (event.get("Action") or event.get("status") or "").split(":", 1)[0]
        if action not in ACTIONS:
            return
        actor = event.get("Actor") or {}
        project = (actor.get("Attributes") or {}).get(PROJECT_LABEL)
        if project:
            self._publish(project, str(actor.get("ID") or event.get("id") or ""))

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the events client failed", exc_info=True)


class EventListeners:
    """One EventListener per engine, created on first use; stop() ends them all."""

    def __init__(self) -> None:
        self._listeners: dict[str, EventListener] = {}
        self._lock = threading.Lock()

    def get(self, engine: Engine) -> EventListener:
        with self._lock:
            listener = self._listeners.get(engine.id)
            if listener is None or listener.engine is not engine:
                if listener is not None:
                    listener.stop()
                listener = self._listeners[engine.id] = EventListener(engine)
            return listener

    def stop(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            listener.stop()
