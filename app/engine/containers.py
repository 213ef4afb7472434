"""Containers of a compose project, as the engine sees them, and per-container actions.

Why not `client.containers.list()`: the SDK inspects every container one by one (N+1 calls) on
every refresh. We make ONE list call per refresh and inspect only containers whose summary
(state, health, exit code) changed since we last looked, concurrently; a stale inspection is
refreshed in the background, so a page never waits on N inspections of a steady stack.

API (everything through Engine.call, so errors arrive as EngineUnavailable/NotFound/...):
- ``project_containers(engine, project, token=None, changes=None) -> list[ContainerInfo]``: every
  container (running or not) labelled com.docker.compose.project=project, one-off `run`
  containers excluded. ``token``: a value that stays equal while nothing of the project changed,
  taken BEFORE this call (the engine's event listener's token plus our own actions, see
  app/web/services.snapshot); a call with the token the previous list was stored under, within
  LIST_MAX_AGE, reuses that list and only pings the engine (so a dead engine still shows at once).
  ``changes(old_token)``: the ids of the containers that changed since old_token (None: unknown);
  when known, only those are asked again (one small list call) and the rest is reused. None:
  always list.
- ``ContainerInfo``: id, name, service, number, state (created|running|paused|restarting|exited|
  dead|removing), health (healthy|unhealthy|starting|"" for none), exit_code, started_at,
  finished_at (aware datetimes or None), restart_count, image (as configured), image_id,
  stop_timeout, config_hash (the com.docker.compose.config-hash label Compose set at creation),
  health_output / health_exit (the last healthcheck's output and exit code, "" / None when there
  is none); ``uptime(now)`` in seconds.
- ``forget()`` drops every cached list, inspection and image id; ``forget(container_id)`` that
  container's inspection and every cached list (after an action we know changed something).
- ``image_ids(engine, refs) -> dict[ref, id]``: the id each image reference points to now (for
  drift: a container created from an older pull), cached briefly; missing images are left out.
- ``start(engine, container_id)``, ``stop(engine, container_id, timeout=None)``,
  ``restart(engine, container_id, timeout=None)``: timeout None = the container's own stop
  grace period (Compose's stop_grace_period), so the HTTP wait is sized to fit it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from app.engine import Engine
from app.errors import EngineUnavailable
from app.errors import NotFound

log = logging.getLogger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
HASH_LABEL = "com.docker.compose.config-hash"
HEALTH_OUTPUT_MAX = 2000  # characters of a healthcheck's output kept (the engine keeps 4 KiB)
IMAGE_TTL = 5.0  # seconds an image reference's id is trusted (a pull shows as drift within it)
INSPECT_TTL = 15.0  # seconds before a cached inspection is refreshed in the background
LIST_MAX_AGE = 10.0  # seconds a project's list is reused under an unchanged token (safety net)
PATCH_MAX = 32  # more changed containers than this: the whole list is asked again
MAX_STOP_TIMEOUT = 120

_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="inspect")
_EXIT_RE = re.compile(r"\((\d+)\)")


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    service: str
    number: int
    state: str
    health: str
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    restart_count: int
    image: str
    image_id: str
    stop_timeout: int | None = None
    config_hash: str = ""
    health_output: str = ""
    health_exit: int | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def uptime(self, now: float | None = None) -> float | None:
        """Seconds since it started, while it runs."""
        if self.state not in ("running", "paused") or self.started_at is None:
            return None
        return max(0.0, (now or time.time()) - self.started_at.timestamp())


def _parse_time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-"):
        return None
    # Docker gives nanoseconds; fromisoformat takes at most microseconds.
    text = text.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _health_from_status(status: str) -> str:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return "starting" if word == "health: starting" else word
    return ""


def _summary_key(row: dict) -> tuple:
    status = row.get("Status") or ""
    exit_code = _EXIT_RE.search(status) if row.get("State") in ("exited", "restarting") else None
    return (row.get("State"), _health_from_status(status), exit_code[1] if exit_code else None)


@dataclass
class _Cached:
    key: tuple
    at: float
    info: ContainerInfo
    refreshing: bool = False


_cache: dict[str, _Cached] = {}
_cache_lock = threading.Lock()


def _from_inspect(data: dict) -> ContainerInfo:
    state = data.get("State") or {}
    config = data.get("Config") or {}
    labels = config.get("Labels") or {}
    health = (state.get("Health") or {}).get("Status") or ""
    checks = (state.get("Health") or {}).get("Log") or []
    last = checks[-1] if checks and isinstance(checks[-1], dict) else {}
    status = state.get("Status") or ("running" if state.get("Running") else "exited")
    return ContainerInfo(
        id=data["Id"],
        name=(data.get("Name") or "").lstrip("/"),
        service=labels.get(SERVICE_LABEL, ""),
        number=int(labels.get(NUMBER_LABEL) or 1),
        state=status,
        health=health if health != "none" else "",
        exit_code=state.get("ExitCode") if status in ("exited", "dead", "restarting") else None,
        started_at=_parse_time(state.get("StartedAt")),
        finished_at=_parse_time(state.get("FinishedAt")),
        restart_count=int(data.get("RestartCount") or 0),
        image=config.get("Image") or "",
        image_id=data.get("Image") or "",
        stop_timeout=config.get("StopTimeout"),
        config_hash=labels.get(HASH_LABEL, ""),
        health_output=str(last.get("Output") or "").strip()[-HEALTH_OUTPUT_MAX:],
        health_exit=last.get("ExitCode") if isinstance(last.get("ExitCode"), int) else None,
    )


def _inspect(engine: Engine, container_id: str) -> ContainerInfo:
    return _from_inspect(engine.call(lambda c: c.api.inspect_container(container_id), "container"))


def _refresh_later(engine: Engine, container_id: str, key: tuple) -> None:
    def work() -> None:
        try:
            info = _inspect(engine, container_id)
            with _cache_lock:
                _cache[container_id] = _Cached(key, time.monotonic(), info)
        except Exception:  # gone, or the engine left: the next list call will tell
            with _cache_lock:
                _cache.pop(container_id, None)

    _pool.submit(work)


_lists: dict[tuple[str, str], tuple[Hashable, float, list[dict]]] = {}
_forgotten = 0  # forget() calls: a list that was asked before one is not stored for reuse


def _listed(
    engine: Engine, project: str, token: Hashable | None, changes: Callable[[Hashable], set[str] | None] | None
) -> list[dict]:
    """The engine's summaries of the project's containers: reused while the token is unchanged,
    patched with the changed containers' summaries when `changes` names them.

    Why: at 200 containers the engine takes 30-60 ms to answer the list (its JSON), once per poll
    and per open page every 2 s, although nothing happened; the event stream says when it did, and
    which containers it was about (asking for 1-2 of them by id takes the engine ~3 ms). Patched
    lists keep the time of the last whole list: LIST_MAX_AGE bounds every row's age."""
    key = (engine.id, project)
    with _cache_lock:
        hit = _lists.get(key) if token is not None else None
        generation = _forgotten
    fresh = hit is not None and time.monotonic() - hit[1] < LIST_MAX_AGE
    if fresh and hit[0] == token:
        engine.call(lambda c: c.api.ping(), "containers")  # a dead engine is not served from memory
        return hit[2]
    ids = changes(hit[0]) if fresh and changes is not None else None
    label = {"label": [f"{PROJECT_LABEL}={project}"]}
    if ids is not None and len(ids) <= PATCH_MAX:
        at, rows = hit[1], hit[2]
        if ids:  # (an empty id filter would be no filter at all)
            found = engine.call(
                lambda c: c.api.containers(all=True, filters={**label, "id": sorted(ids)}), "containers"
            )
            rows = [r for r in rows if r["Id"] not in ids] + found
        else:
            engine.call(lambda c: c.api.ping(), "containers")
    else:
        at = time.monotonic()
        rows = engine.call(lambda c: c.api.containers(all=True, filters=label), "containers")
    rows = [r for r in rows if (r.get("Labels") or {}).get(ONEOFF_LABEL, "False") != "True"]
    with _cache_lock:
        if token is None or generation != _forgotten:
            _lists.pop(key, None)
        else:
            _lists[key] = (token, at, rows)
    return rows


def project_containers(
    engine: Engine,
    project: str,
    token: Hashable | None = None,
    changes: Callable[[Hashable], set[str] | None] | None = None,
) -> list[ContainerInfo]:
    """All containers of the compose project (one list call, a small one or none while the token
    says little or nothing changed; inspections cached by summary)."""
    rows = _listed(engine, project, token, changes)
    now = time.monotonic()
    wanted: dict[str, tuple] = {r["Id"]: _summary_key(r) for r in rows}
    missing = []
    with _cache_lock:
        for cid, key in wanted.items():
            hit = _cache.get(cid)
            if hit is None or hit.key != key:
                missing.append(cid)
            elif now - hit.at > INSPECT_TTL and not hit.refreshing:
                hit.refreshing = True
                _refresh_later(engine, cid, key)
    fresh = {}
    if missing:
        futures = {cid: _pool.submit(_inspect, engine, cid) for cid in missing}
        for cid, fut in futures.items():
            try:
                fresh[cid] = fut.result(timeout=engine.timeout + 5)
            except EngineUnavailable:
                raise
            except Exception as e:  # removed between list and inspect: skip it
                log.debug("container %s vanished: %s", cid[:12], e)
        with _cache_lock:
            for cid, info in fresh.items():
                _cache[cid] = _Cached(wanted[cid], now, info)
    out = []
    with _cache_lock:
        for cid in wanted:
            hit = _cache.get(cid)
            if hit is not None:
                out.append(hit.info)
    out.sort(key=lambda i: (i.service, i.number, i.name))
    return out


_images: dict[str, tuple[float, str | None]] = {}
_images_lock = threading.Lock()


def _image_id(engine: Engine, ref: str) -> str | None:
    try:
        return engine.call(lambda c: c.api.inspect_image(ref), "image").get("Id")
    except NotFound:
        return None


def image_ids(engine: Engine, refs: Iterable[str]) -> dict[str, str]:
    """The image id each reference (as a container was configured with) points to now."""
    now = time.monotonic()
    out: dict[str, str] = {}
    todo = []
    with _images_lock:
        for ref in {r for r in refs if r}:
            hit = _images.get(ref)
            if hit is not None and now - hit[0] < IMAGE_TTL:
                if hit[1]:
                    out[ref] = hit[1]
            else:
                todo.append(ref)
    futures = {ref: _pool.submit(_image_id, engine, ref) for ref in todo}
    for ref, fut in futures.items():
        try:
            found = fut.result(timeout=engine.timeout + 5)
        except EngineUnavailable:
            raise
        except Exception as e:  # an odd reference: no drift verdict for it
            log.debug("image %s: %s", ref, e)
            found = None
        with _images_lock:
            _images[ref] = (now, found)
        if found:
            out[ref] = found
    return out


def forget(container_id: str | None = None) -> None:
    """Drop cached inspections and lists (after an action we know changed them)."""
    global _forgotten
    with _cache_lock:
        _forgotten += 1
        _lists.clear()
        if container_id is None:
            _cache.clear()
            with _images_lock:
                _images.clear()
        else:
            _cache.pop(container_id, None)


def _timeout_for(engine: Engine, container_id: str, timeout: int | None) -> int:
    if timeout is not None:
        return max(0, min(int(timeout), MAX_STOP_TIMEOUT))
    with _cache_lock:
        hit = _cache.get(container_id)
    grace = hit.info.stop_timeout if hit else None
    if grace is None:
        grace = _inspect(engine, container_id).stop_timeout
    return max(0, min(int(grace if grace is not None else 10), MAX_STOP_TIMEOUT))


def start(engine: Engine, container_id: str) -> None:
    """Start one container."""
    engine.call(lambda c: c.api.start(container_id), "container")
    forget(container_id)


def stop(engine: Engine, container_id: str, timeout: int | None = None) -> None:
    """Stop one container, waiting at most its grace period (or timeout) before SIGKILL."""
    grace = _timeout_for(engine, container_id, timeout)
    engine.call(lambda c: c.api.stop(container_id, timeout=grace), "container")
    forget(container_id)


def restart(engine: Engine, container_id: str, timeout: int | None = None) -> None:
    """Restart one container (stop with its grace period, then start)."""
    grace = _timeout_for(engine, container_id, timeout)
    engine.call(lambda c: c.api.restart(container_id, timeout=grace), "container")
    forget(container_id)
