"""CPU and memory of running containers, sampled in the background so a page never waits on stats.

Why a sampler: a stats call that computes CPU % itself blocks ~2 s per container; we ask the
engine for one-shot samples, all containers at once, every INTERVAL seconds, and compute CPU %
from our own previous sample. Pages read the latest sample from memory. A one-shot call still
waits for the engine's next collection tick (up to ~1 s), so the calls of one round must run in
parallel, not in batches: the sampler has its own pool of workers and its own HTTP connection
pool of the same size (the shared client's pool holds 10).

API:
- ``StatsSampler(engine, interval=2.0, workers=48, idle_after=60.0)``
- ``sampler.watch(project)``: (re)start sampling the project's running containers; starts the
  thread lazily on first use. Projects nobody asked about for ``idle_after`` seconds are dropped.
- ``sampler.latest(container_id) -> Sample | None`` and ``sampler.snapshot() -> dict``: never block.
- ``sampler.error``: the last engine error text ("" when fine).
- ``sampler.stop()``: ends the thread and its pool (registered as a shutdown hook by the web layer).
- ``Sample``: cpu_percent (None until two samples exist), mem_used, mem_limit (bytes), at (epoch s).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass

import docker
from app.engine import Engine
from app.engine import engine_errors
from app.engine.containers import PROJECT_LABEL
from app.errors import StackpilotError

log = logging.getLogger(__name__)


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


def sample_from(raw: dict, previous: Sample | None, at: float) -> Sample:
    cpu = raw.get("cpu_stats") or {}
    total = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
    system = int(cpu.get("system_cpu_usage") or 0)
    cpus = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)
    percent = None
    if previous is not None and system > previous.system_total and total >= previous.cpu_total:
        percent = (total - previous.cpu_total) / (system - previous.system_total) * cpus * 100.0
    mem = raw.get("memory_stats") or {}
    return Sample(cpu_percent=percent, mem_used=memory_used(mem), mem_limit=int(mem.get("limit") or 0),
                  at=at, cpu_total=total, system_total=system)


class StatsSampler:
    """Owns one thread and a small pool; keeps the latest Sample per running container."""

    def __init__(self, engine: Engine, interval: float = 2.0, workers: int = 48,
                 idle_after: float = 60.0) -> None:
        self.engine = engine
        self.interval = interval
        self.idle_after = idle_after
        self.error = ""
        self._workers = workers
        self._samples: dict[str, Sample] = {}
        self._projects: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()

    def watch(self, project: str) -> None:
        with self._lock:
            new = project not in self._projects
            self._projects[project] = time.monotonic()
            if self._stop.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="stats")
                self._thread = threading.Thread(target=self._loop, name="stats-sampler", daemon=True)
                self._thread.start()
        if new:
            self._wake.set()

    def latest(self, container_id: str) -> Sample | None:
        return self._samples.get(container_id)

    def snapshot(self) -> dict[str, Sample]:
        return dict(self._samples)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._drop_client()

    def _call(self, fn):
        """fn(api client) on our own connection pool, with the engine's error translation."""
        with engine_errors("container"):
            with self._client_lock:
                if self._client is None:
                    kwargs = {"timeout": self.engine.timeout, "max_pool_size": self._workers}
                    self._client = (docker.DockerClient(base_url=self.engine.base_url, **kwargs)
                                    if self.engine.base_url else docker.DockerClient.from_env(**kwargs))
                client = self._client
            return fn(client.api)

    def _drop_client(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            with self._lock:
                for project, seen in list(self._projects.items()):
                    if began - seen > self.idle_after:
                        del self._projects[project]
                projects = list(self._projects)
            if not projects:
                with self._lock:
                    self._thread = None
                    self._pool.shutdown(wait=False)
                    self._pool = None
                self._drop_client()
                return
            try:
                self._sample(projects)
                self.error = ""
            except StackpilotError as e:
                self.error = e.message
                self._drop_client()
            except Exception:  # never let the sampler die silently
                log.exception("stats sampler round failed")
            self._wake.clear()
            self._wake.wait(max(0.1, self.interval - (time.monotonic() - began)))

    def _sample(self, projects: list[str]) -> None:
        ids: list[str] = []
        for project in projects:
            rows = self._call(lambda api, p=project: api.containers(
                filters={"label": [f"{PROJECT_LABEL}={p}"], "status": "running"}))
            ids += [r["Id"] for r in rows]
        futures = {cid: self._pool.submit(self._one, cid) for cid in ids}
        wait_futures(futures.values(), timeout=self.engine.timeout)
        fresh = {}
        for cid, fut in futures.items():
            if fut.done() and fut.exception() is None and fut.result() is not None:
                fresh[cid] = fut.result()
            elif cid in self._samples:
                fresh[cid] = self._samples[cid]
        self._samples = fresh  # containers no longer running drop out

    def _one(self, container_id: str) -> Sample | None:
        try:
            raw = self._call(lambda api: api.stats(container_id, stream=False, one_shot=True))
        except StackpilotError:
            return None
        return sample_from(raw, self._samples.get(container_id), time.time())
