"""Build and update runs (issue 14): several Compose steps as ONE run of the progress panel.

Why one run: "Rebuild & recreate" is `build` then `up -d --no-deps`, an image update is "keep the
old image id under a rollback tag, pull, recreate". Two separate runs would free the stack lock
between them (another action could slip in) and show two panels; a failing first step must stop
the rest, so a failed build never replaces the running container.

API:
- ``start_steps(runner, steps, title, user, on_done=None) -> Run``: each step is Compose arguments
  (a tuple of str) or a callable ``step(run) -> int`` (Python work that writes its own lines);
  the first non-zero exit ends the run with that code. StackBusy is raised here, not later.
- ``failed_step(lines) -> str``: the BuildKit step that failed ("[2/3] RUN make"), "" if none.
- Image updates: ``check(engine, stack, model) -> CheckResult`` (per reference an ImageStatus:
  update / current / pinned / not-pulled / error with the registry's reason), ``start_check`` (in a
  thread), ``check_if_due`` (the schedule, default daily), ``cached(stack)`` (what pages read),
  ``update_steps`` (keep previous id as ``<repo>:stackpilot-previous-<service>``, pull, recreate only
  those services in dependency order, record old -> new digests) and ``rollback_steps``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

from app import compose
from app.compose import ACTION_TIMEOUT
from app.compose import ComposeRunner
from app.compose import Run
from app.engine import Engine
from app.engine import images
from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import Stack
from app.stack.actions import names_arg
from app.stack.model import ComposeModel

log = logging.getLogger(__name__)

Step = tuple[str, ...] | Callable[[Run], int]

# BuildKit plain progress: "#7 [app 2/3] RUN false" then "#7 ERROR: process ... exit code: 1".
_STEP = re.compile(r"^#(\d+) (\[[^\]]+\] .+)$")
_ERROR = re.compile(r"^#(\d+) ERROR:")


def failed_step(lines: Sequence[str]) -> str:
    """The Dockerfile step BuildKit reported as failed, as BuildKit names it."""
    steps: dict[str, str] = {}
    failed = ""
    for line in lines:
        m = _STEP.match(line.strip())
        if m:
            steps.setdefault(m.group(1), m.group(2))
            continue
        m = _ERROR.match(line.strip())
        if m and m.group(1) in steps:
            failed = steps[m.group(1)]
    return failed


def _describe(step: Step) -> str:
    return " ".join(step) if isinstance(step, tuple) else getattr(step, "__doc__", "") or "step"


def start_steps(
    runner: ComposeRunner,
    steps: Sequence[Step],
    title: str,
    user: str = "",
    on_done: Callable[[Run], None] | None = None,
    timeout: float = ACTION_TIMEOUT,
) -> Run:
    """Run the steps one after the other under the stack lock, in one Run (one panel)."""
    runner.runners.compose_version()
    first = next((s for s in steps if isinstance(s, tuple)), ("build",))
    job = runner._new_run(list(first), title, user)
    combined = [a for s in steps for a in ([*s, "&&"] if isinstance(s, tuple) else [])][:-1] or job.args
    runner._acquire(job.title, user, 0)
    runner.runners.remember(job)

    def body() -> None:
        code = 0
        started = time.monotonic()
        try:
            for step in steps:
                left = max(1.0, timeout - (time.monotonic() - started))
                if len(steps) > 1:
                    job.add(f"$ {_describe(step)}" if isinstance(step, tuple) else f"— {_describe(step)}")
                if isinstance(step, tuple):
                    job.args = list(step)  # what _execute runs
                    code = runner._execute(job, left, None)
                else:
                    code = step(job)
                if code != 0 and isinstance(step, tuple) and (step[:1] == ("build",) or "--build" in step):
                    where = failed_step(job.lines_since(0)[0])
                    job.add(
                        f"Build failed{' at step ' + where if where else ''} (exit {code}); "
                        "the running containers were left as they were."
                    )
                if code != 0:
                    break
        except Exception as e:  # the thread must always finish the run and free the stack
            log.exception("run %s failed", job.title)
            job.add(f"Could not run: {getattr(e, 'message', e)}")
            code = -1
        finally:
            job.args = combined  # the whole sequence, "&&"-joined, for the panel and the tests
            job.exit_code, job.finished_at = code, time.time()
            runner._release()
            if on_done is not None:  # the audit row gets this run's stack (app.compose.running_for)
                compose._thread_stack.key = "/".join(runner.key)
                try:
                    on_done(job)
                except Exception:
                    log.exception("on_done hook of %s failed", job.title)
                finally:
                    compose._thread_stack.key = ""
            job.finish(code)

    threading.Thread(target=body, name=f"steps-{job.title}", daemon=True).start()
    return job


# -- image updates --------------------------------------------------------------------------------
# Per image reference of the stack's pulled services: the local image's repo digest against the
# registry's current digest of the tag (app.engine.images, no pull). Checks run in a background
# thread (on demand, or when the last one is older than CHECK_INTERVAL as a page looks); the page
# reads the cache and never waits on a registry.
CHECK_INTERVAL = 24 * 3600.0  # default daily


@dataclass(frozen=True)
class ImageStatus:
    """One image reference: `state` is update / current / pinned / not-pulled / local / error."""

    ref: str
    services: tuple[str, ...]
    state: str
    local: str = ""  # the local repo digest (sha256:...)
    remote: str = ""
    error: str = ""
    checked_at: float = 0.0

    @property
    def word(self) -> str:
        return {
            "update": "update available",
            "current": "up to date",
            "pinned": "pinned digest",
            "not-pulled": "not pulled yet",
            "local": "local image (never pulled)",
            "error": "check failed",
        }.get(self.state, self.state)


@dataclass
class CheckResult:
    images: dict[str, ImageStatus] = field(default_factory=dict)
    checked_at: float = 0.0
    running: bool = False
    requests: int = 0  # registry requests of the last check (one manifest lookup per reference)

    def for_service(self, name: str) -> ImageStatus | None:
        return next((s for s in self.images.values() if name in s.services), None)

    @property
    def checked_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.checked_at)) if self.checked_at else ""

    @property
    def updates(self) -> list[ImageStatus]:
        return [s for s in self.images.values() if s.state == "update"]


_results: dict[tuple, CheckResult] = {}
_results_lock = threading.Lock()


def _key(stack: Stack) -> tuple:
    return (str(stack.directory), stack.project, stack.engine)


def pulled_refs(model: ComposeModel) -> dict[str, tuple[str, ...]]:
    """Image reference -> the active services that run it, for services not built here."""
    refs: dict[str, list[str]] = {}
    for s in model.services.values():
        if s.active and s.image and not s.build_context:
            refs.setdefault(s.image, []).append(s.name)
    return {r: tuple(n) for r, n in refs.items()}


def check_ref(engine: Engine, ref: str, services: tuple[str, ...], now: float | None = None) -> ImageStatus:
    """One reference's status; registry trouble is this reference's state, never an exception."""
    now = now or time.time()
    repo, tag, pinned = images.split_ref(ref)
    if pinned:
        return ImageStatus(ref, services, "pinned", local=pinned, checked_at=now)
    image_id, digests = images.local_digests(engine, ref)
    if image_id is None:
        return ImageStatus(ref, services, "not-pulled", checked_at=now)
    if not digests:  # built or loaded here, never pulled: no registry digest to compare with
        return ImageStatus(ref, services, "local", checked_at=now)
    remote = images.remote_digest(engine, ref)
    if remote.error:
        return ImageStatus(
            ref, services, "error", local=digests[0] if digests else "", error=remote.error, checked_at=now
        )
    state = "current" if remote.digest in digests else "update"
    return ImageStatus(ref, services, state, local=digests[0] if digests else "", remote=remote.digest, checked_at=now)


def check(engine: Engine, stack: Stack, model: ComposeModel, workers: int = 4) -> CheckResult:
    """Check every pulled reference now (a few in parallel), store and return the result."""
    refs = pulled_refs(model)
    now = time.time()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(refs) or 1))) as pool:
        found = dict(zip(refs, pool.map(lambda r: _safe_check(engine, r, refs[r], now), refs), strict=True))
    result = CheckResult(
        images=found,
        checked_at=now,
        requests=sum(1 for s in found.values() if s.state in ("current", "update", "error")),
    )
    with _results_lock:
        _results[_key(stack)] = result
    return result


def _safe_check(engine: Engine, ref: str, services: tuple[str, ...], now: float) -> ImageStatus:
    try:
        return check_ref(engine, ref, services, now)
    except StackpilotError as e:
        return ImageStatus(ref, services, "error", error=e.message, checked_at=now)


def cached(stack: Stack) -> CheckResult:
    with _results_lock:
        return _results.get(_key(stack)) or CheckResult()


def start_check(engine: Engine, stack: Stack, model: ComposeModel) -> bool:
    """Check in a background thread; False when one is already running for this stack."""
    with _results_lock:
        current = _results.setdefault(_key(stack), CheckResult())
        if current.running:
            return False
        current.running = True

    def body() -> None:
        try:
            check(engine, stack, model)
        except Exception:
            log.exception("update check of %s failed", stack.project)
            with _results_lock:
                _results[_key(stack)].running = False

    threading.Thread(target=body, name=f"update-check-{stack.project}", daemon=True).start()
    return True


def check_if_due(engine: Engine, stack: Stack, model: ComposeModel, interval: float = CHECK_INTERVAL) -> None:
    """The schedule: a check older than `interval` (or none yet) starts one in the background."""
    if interval <= 0:
        return
    result = cached(stack)
    if not result.running and time.time() - result.checked_at > interval and pulled_refs(model):
        start_check(engine, stack, model)


def forget(stack: Stack) -> None:
    with _results_lock:
        _results.pop(_key(stack), None)


def applied(stack: Stack, refs: Sequence[str]) -> None:
    """After an update: these references are current (until the next check says otherwise)."""
    with _results_lock:
        result = _results.get(_key(stack))
        if result is None:
            return
        for ref in refs:
            old = result.images.get(ref)
            if old is not None:
                result.images[ref] = ImageStatus(
                    old.ref, old.services, "current", local=old.remote, remote=old.remote, checked_at=old.checked_at
                )


def dependency_order(model: ComposeModel, names: Sequence[str]) -> list[str]:
    """`names` with each service after those it depends on (file order otherwise)."""
    wanted, out, seen = set(names), [], set()

    def visit(name: str, path: frozenset) -> None:
        if name in seen or name in path or name not in model.services:
            return
        for dep in model.services[name].depends_on:
            visit(dep.service, path | {name})
        seen.add(name)
        if name in wanted:
            out.append(name)

    for name in model.service_names():
        visit(name, frozenset())
    return out + [n for n in names if n not in out]


def update_steps(
    engine: Engine, refs: dict[str, tuple[str, ...]], model: ComposeModel, notes: dict[str, str]
) -> list[Step]:
    """Keep each image's previous id under the rollback tag, pull, recreate only its services
    (dependency order); `notes` gets "old -> new" per reference for the audit row."""
    names = dependency_order(model, [n for svcs in refs.values() for n in svcs])

    def keep(run: Run) -> int:
        for ref, svcs in refs.items():
            notes[ref] = (images.local_digests(engine, ref)[1] or ["none"])[0]
            for svc in svcs:
                kept = images.keep_previous(engine, ref, svc)
                if kept:
                    run.add(f"{svc}: the current image {kept[:19]} is kept as {images.previous_tag(ref, svc)}")
        return 0

    keep.__doc__ = "keep the current images for a roll back"

    def record(run: Run) -> int:
        for ref, svcs in refs.items():
            new = (images.local_digests(engine, ref)[1] or ["none"])[0]
            notes[ref] = f"{ref}: {notes.get(ref, 'none')} -> {new}"
            run.add(
                f"{ref}: {new}. To roll back: Roll back on {', '.join(svcs)} "
                f"(recreates with {images.previous_tag(ref, svcs[0])})."
            )
        return 0

    record.__doc__ = "record the new digests"
    return [keep, ("pull", *names_arg(names)), ("up", "-d", "--no-deps", "--pull", "never", *names_arg(names)), record]


def rollback_steps(engine: Engine, ref: str, services: tuple[str, ...], service: str) -> list[Step]:
    """Point the reference back at the image kept by the last update, recreate its services."""

    def restore(run: Run) -> int:
        try:
            image_id = images.restore_previous(engine, ref, service)
        except NotFound:
            run.add(
                f"No previous image of {service} is kept ({images.previous_tag(ref, service)}): nothing to roll back."
            )
            return 1
        run.add(f"{ref} points again at {image_id[:19]} ({images.previous_tag(ref, service)})")
        return 0

    restore.__doc__ = "restore the previous image"
    return [restore, ("up", "-d", "--no-deps", "--pull", "never", *names_arg(services))]
