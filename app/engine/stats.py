"""CPU and memory of running containers, streamed in the background while someone watches.

Why streaming: a one-shot `stats` call waits for the engine's next collection tick and costs a
request, a response and a JSON parse per container per round (the old sampler spent 2.6 CPU-s a
minute at 50 containers). The engine's own stream (`stats?stream=1`) pushes one document per
container per second on a connection that stays open; one thread reads every such connection
through a selector, keeps only the newest complete document per read and parses it only when the
stored sample is older than PARSE_AFTER, so most documents are never decoded. CPU % comes from
the document itself (cpu_stats against precpu_stats), as `docker stats` computes it.

Interest drives everything: ``watch(project)`` leases a project for ``idle_after`` seconds (a
viewer renews it while it looks); streams open for the project's running containers and close
when they stop or when the last lease expires; then the thread ends and the engine sees no stats
request at all.

API:
- ``StatsSampler(engine, interval=2.0, workers=48, idle_after=6.0)`` (``workers`` is accepted
  for compatibility; streams need no pool)
- ``sampler.watch(project)``: lease (or renew) the project; starts the thread lazily.
- ``sampler.latest(container_id) -> Sample | None`` and ``sampler.snapshot() -> dict``: never block.
- ``sampler.error``: the last engine error text ("" when fine); ``sampler.running``; ``sampler.streams``.
- ``sampler.stop()``: ends the thread and every stream (a shutdown hook).
- ``StatsSamplers``: one sampler per engine id, created on first use (the registry's engines).
- ``Sample``: cpu_percent (None until the engine has two readings), mem_used, mem_limit (bytes), at.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass

from app.engine import Engine
from app.engine import engine_errors
from app.engine.containers import PROJECT_LABEL
from app.errors import StackpilotError

log = logging.getLogger(__name__)

TICK = 0.5  # the loop's longest sleep: leases and stop() are noticed this fast
RELIST = 3.0  # running containers of watched projects are listed this often (off the reader thread)
PARSE_AFTER = 0.9  # snapshot() decodes a document when the stored sample is older than this


@dataclass(frozen=True)
class Sample:
    cpu_percent: float | None
    mem_used: int
    mem_limit: int
    at: float
    # raw counters kept for the next CPU % computation
    cpu_total: int = 0
    system_total: int = 0

    def age(self, now: float | None = None) -> float:
        return (now or time.time()) - self.at


def memory_used(mem: dict) -> int:
    """What `docker stats` shows: usage minus page cache (inactive_file on cgroup v2, v1 names too)."""
    usage = int(mem.get("usage") or 0)
    stats = mem.get("stats") or {}
    cache = stats.get("inactive_file", stats.get("total_inactive_file", 0)) or 0
    return max(0, usage - int(cache))


def _counters(cpu: dict) -> tuple[int, int]:
    return int((cpu.get("cpu_usage") or {}).get("total_usage") or 0), int(cpu.get("system_cpu_usage") or 0)


def sample_from(raw: dict, previous: Sample | None, at: float) -> Sample:
    """A Sample from one stats document; CPU % from its precpu_stats, else from `previous`."""
    cpu = raw.get("cpu_stats") or {}
    total, system = _counters(cpu)
    cpus = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)
    pre_total, pre_system = _counters(raw.get("precpu_stats") or {})
    if not pre_system and previous is not None:
        pre_total, pre_system = previous.cpu_total, previous.system_total
    percent = None
    if pre_system and system > pre_system and total >= pre_total:
        percent = (total - pre_total) / (system - pre_system) * cpus * 100.0
    mem = raw.get("memory_stats") or {}
    return Sample(
        cpu_percent=percent,
        mem_used=memory_used(mem),
        mem_limit=int(mem.get("limit") or 0),
        at=at,
        cpu_total=total,
        system_total=system,
    )


class _Dechunk:
    """Chunked transfer coding removed from what a stats connection sends (documents end in \\n)."""

    __slots__ = ("buf", "left", "skip", "done")

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0
        self.skip = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        out = []
        pos, end = 0, len(buf)
        while pos < end:
            if self.left:
                take = min(self.left, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.left -= take
                if not self.left:
                    self.skip = 2
            elif self.skip:
                step = min(self.skip, end - pos)
                pos += step
                self.skip -= step
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol].split(b";", 1)[0] or b"0", 16)
                pos = eol + 2
                if not size:
                    self.done = True
                    pos = end
                    break
                self.left = size
        self.buf = buf[pos:]
        return b"".join(out)


class _Stream:
    """One container's open stats request."""

    def __init__(self, cid: str, response, sock: socket.socket | None, chunked: bool) -> None:
        self.cid = cid
        self.response = response
        self.sock = sock
        self.dechunk = _Dechunk() if chunked else None
        self.tail = b""  # an incomplete document
        self.latest = b""  # the newest complete document not decoded yet
        self.thread: threading.Thread | None = None
        self.closed = False

    def feed(self, data: bytes) -> None:
        if self.dechunk is not None:
            data = self.dechunk.feed(data)
        if not data:
            return
        data = self.tail + data if self.tail else data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.tail = data if len(data) < 1 << 20 else b""
            return
        start = data.rfind(b"\n", 0, cut) + 1
        if cut > start:
            self.latest = data[start:cut]
        self.tail = data[cut + 1 :]

    def close(self) -> None:
        self.closed = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.response.close()
        except Exception:  # noqa: BLE001 - closing a half-dead connection: nothing to report
            log.debug("closing a stats response failed", exc_info=True)


class StatsSampler:
    """Owns one thread and one stats stream per running container of the watched projects."""

    def __init__(self, engine: Engine, interval: float = 2.0, workers: int = 48, idle_after: float = 6.0) -> None:
        self.engine = engine
        self.interval = interval
        self.idle_after = idle_after
        self.error = ""
        self._samples: dict[str, Sample] = {}
        self._projects: dict[str, float] = {}
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None
        self._selector: selectors.BaseSelector | None = None
        # The list call and the opens run in a short-lived thread (a slow engine must not stop the
        # reading of the streams already open); it hands its results over under this lock.
        self._handover = threading.Lock()
        self._opened: list[_Stream] = []
        self._wanted: set[str] | None = None
        self._lister: threading.Thread | None = None
        self._leaving = False

    # -- the public side -------------------------------------------------------------------
    def watch(self, project: str) -> None:
        """Lease the project for idle_after seconds (renew while a viewer looks)."""
        with self._lock:
            new = project not in self._projects
            self._projects[project] = time.monotonic()
            if self._stop.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="stats-sampler", daemon=True)
                self._thread.start()
        if new:
            self._wake.set()

    def latest(self, container_id: str) -> Sample | None:
        return self._samples.get(container_id)

    def snapshot(self) -> dict[str, Sample]:
        """The newest sample of every streamed container, decoding documents not read yet."""
        if self._streams:
            self._decode_pending()
        return dict(self._samples)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def streams(self) -> int:
        """How many stats requests are open on the engine right now."""
        return len(self._streams)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._close_all()

    # -- streams ---------------------------------------------------------------------------
    def _api(self):
        if self._client is None:
            with engine_errors("container"):
                self._client = self.engine._open()  # our own pool: streams never starve page calls
        return self._client.api

    def _request(self, cid: str) -> _Stream:
        """Open one container's stats stream (a blocking HTTP request: called off the reader thread)."""
        api = self._api()
        with engine_errors("container"):
            response = api._get(api._url("/containers/{0}/stats", cid), params={"stream": 1}, stream=True)
            api._raise_for_status(response)
        resp = response.raw._fp
        reader = getattr(resp, "fp", None)
        sock = _socket_of(resp)
        if (
            sock is not None
            and reader is not None
            and hasattr(reader, "peek")
            and getattr(resp, "chunk_left", None) is None
        ):
            stream = _Stream(cid, response, sock, bool(resp.chunked))
            sock.setblocking(False)
            try:
                early = reader.peek(1 << 16)  # what came with the headers sits in http.client's buffer
            except (BlockingIOError, OSError):
                early = b""
            if early:
                reader.read(len(early))
                stream.feed(early)
            return stream
        return _Stream(cid, response, None, False)  # e.g. ssh through a helper: a thread reads it

    def _adopt(self, stream: _Stream) -> None:
        """Start reading a stream _request opened (on the reader thread)."""
        if stream.cid in self._streams:
            self._close(stream.cid)
        self._streams[stream.cid] = stream
        if stream.sock is not None:
            self._selector.register(stream.sock, selectors.EVENT_READ, stream)
        else:
            stream.thread = threading.Thread(
                target=self._read_blocking, args=(stream,), name="stats-stream", daemon=True
            )
            stream.thread.start()

    def _read_blocking(self, stream: _Stream) -> None:
        try:
            for data in stream.response.raw.stream(1 << 16, decode_content=False):
                if stream.closed:
                    return
                stream.feed(data)
        except Exception:  # noqa: BLE001 - the connection ended; the loop re-opens it if needed
            log.debug("stats stream of %s ended", stream.cid, exc_info=True)
        stream.closed = True

    def _close(self, cid: str) -> None:
        stream = self._streams.pop(cid, None)
        if stream is None:
            return
        if stream.sock is not None and self._selector is not None:
            try:
                self._selector.unregister(stream.sock)
            except (KeyError, ValueError):
                pass
        stream.close()

    def _close_all(self) -> None:
        for cid in list(self._streams):
            self._close(cid)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the stats client failed", exc_info=True)
            self._client = None

    def _decode_pending(self, min_age: float = PARSE_AFTER) -> None:
        now = time.time()
        for cid, stream in list(self._streams.items()):
            doc = stream.latest
            if not doc:
                continue
            previous = self._samples.get(cid)
            if previous is not None and now - previous.at < min_age:
                continue
            stream.latest = b""
            try:
                raw = json.loads(doc)
            except ValueError:
                continue
            if raw.get("read", "").startswith("0001-"):
                continue  # the container stopped: the engine sends zeros
            self._samples[cid] = sample_from(raw, previous, now)

    # -- the loop --------------------------------------------------------------------------
    def _interested(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            for project, seen in list(self._projects.items()):
                if now - seen > self.idle_after:
                    del self._projects[project]
            return list(self._projects)

    def _running_ids(self, projects: list[str]) -> set[str]:
        api = self._api()
        ids: set[str] = set()
        with engine_errors("containers"):
            for project in projects:
                rows = api.containers(filters={"label": [f"{PROJECT_LABEL}={project}"], "status": "running"})
                ids.update(r["Id"] for r in rows)
        return ids

    def _loop(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._leaving = False
        next_list = 0.0
        try:
            while not self._stop.is_set():
                projects = self._interested()
                if not projects:
                    break
                now = time.monotonic()
                if now >= next_list and (self._lister is None or not self._lister.is_alive()):
                    next_list = now + RELIST
                    self._lister = threading.Thread(
                        target=self._list_and_open,
                        args=(projects, set(self._streams)),
                        name="stats-lister",
                        daemon=True,
                    )
                    self._lister.start()
                self._apply()
                self._pump(TICK)
                if self._wake.is_set():
                    self._wake.clear()
                    next_list = 0.0
        except Exception:  # never let the sampler die silently
            log.exception("stats sampler failed")
        finally:
            with self._handover:
                self._leaving = True  # a lister still running closes what it opens from now on
                opened, self._opened = self._opened, []
            for stream in opened:
                stream.close()
            with self._lock:
                self._thread = None
            self._close_all()
            self._samples = {}
            self._selector.close()
            self._selector = None
            # A watch() that raced with our exit starts a new thread on its next call.

    def _list_and_open(self, projects: list[str], have: set[str]) -> None:
        try:
            wanted = self._running_ids(projects)
        except StackpilotError as e:
            # A list that failed (a slow engine) says nothing about the streams: they end by
            # themselves if the engine is really gone, and their samples stay until then.
            self.error = e.message
            return
        except Exception:  # noqa: BLE001 - a lister must not die silently either
            log.exception("stats list failed")
            return
        with self._handover:
            self._wanted = wanted
        error = ""
        for cid in wanted - have:
            try:
                stream = self._request(cid)
            except StackpilotError as e:
                if "not found" in e.message:  # gone since the list: not an engine problem
                    continue
                error = e.message
                break  # the next round tries again
            with self._handover:
                if not self._leaving:
                    self._opened.append(stream)
                    continue
            stream.close()
            return
        self.error = error

    def _apply(self) -> None:
        """Take over what the lister found: new streams in, streams of stopped containers out."""
        with self._handover:
            opened, self._opened = self._opened, []
            wanted, self._wanted = self._wanted, None
        for stream in opened:
            self._adopt(stream)
        if wanted is not None:
            for cid in list(self._streams):
                if cid not in wanted or self._streams[cid].closed:
                    self._close(cid)
        for cid in list(self._samples):
            if cid not in self._streams:
                del self._samples[cid]  # containers no longer running drop out

    def _pump(self, timeout: float) -> None:
        if not self._streams or self._selector is None or not self._selector.get_map():
            self._wake.wait(timeout)
            return
        for key, _ in self._selector.select(timeout):
            stream: _Stream = key.data
            try:
                while True:
                    data = stream.sock.recv(1 << 16)
                    if not data:
                        stream.closed = True
                        break
                    stream.feed(data)
                    if len(data) < 1 << 16:
                        break
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                stream.closed = True
            if stream.closed:
                self._close(stream.cid)
        # The loop keeps samples under ~interval old; snapshot() refreshes what a viewer reads.
        self._decode_pending(self.interval * 0.9)


def _socket_of(resp) -> socket.socket | None:
    """The plain socket under an http.client response (unix or tcp), or None (TLS, ssh helpers)."""
    try:
        raw = resp.fp.raw
    except AttributeError:
        return None
    sock = getattr(raw, "_sock", raw)
    if type(sock) is not socket.socket:
        return None
    return sock


class StatsSamplers:
    """One StatsSampler per engine, created on first use; stop() ends them all."""

    def __init__(self, **options) -> None:
        self._options = options
        self._samplers: dict[str, StatsSampler] = {}
        self._lock = threading.Lock()

    def get(self, engine: Engine) -> StatsSampler:
        with self._lock:
            sampler = self._samplers.get(engine.id)
            if sampler is None or sampler.engine is not engine:
                if sampler is not None:
                    sampler.stop()
                sampler = self._samplers[engine.id] = StatsSampler(engine, **self._options)
            return sampler

    def stop(self) -> None:
        with self._lock:
            samplers = list(self._samplers.values())
        for sampler in samplers:
            sampler.stop()
