"""The launch: write the planned files (with backups), run the recipe's preparation steps, then
start the stack through Compose, following every service to healthy (or naming the one that is not).

It runs in a background thread; the page polls `LaunchJob.snapshot()`. Compose's own exit code
is not trusted alone (`up --wait` can exit 0 with an unhealthy container), so the engine's view
of every container decides the outcome.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.compose import ComposeRunner
from app.engine import Engine
from app.engine import containers as engine_containers
from app.engine import host
from app.engine.self import own_service
from app.errors import StackBusy
from app.errors import StackpilotError
from app.stack import backups
from app.stack import caddy
from app.stack.actions import plan_up
from app.stack.atomic import atomic_write
from app.stack.model import model_from_json
from app.wizard.plan import UP_ARGS
from app.wizard.plan import Plan
from app.wizard.recipe import PrepareStep

log = logging.getLogger(__name__)

GIT_TIMEOUT = 300
LOG_TAIL = 40
HEALTH_WAIT = 600.0  # seconds a container may stay "starting" before the launch gives up on it
STABLE_AFTER = 2.0  # seconds a container without a healthcheck must have run to count as running
_CONTAINER_LINE = re.compile(r"^\s*Container\s+(\S+)\s+(\w+)")
_PULL_LINE = re.compile(r"^\s*(?:Image\s+)?(\S+)\s+(Pulling|Pulled)\b")
_STAGES = {
    "Creating": "creating",
    "Created": "created",
    "Recreate": "creating",
    "Recreated": "created",
    "Starting": "starting",
    "Started": "started",
    "Running": "started",
    "Waiting": None,
    "Healthy": "healthy",
    "Exited": "exited",
    "Error": "failed",
    "Stopping": None,
    "Stopped": None,
}


@dataclass
class Step:
    id: str
    title: str
    status: str = "pending"  # pending | running | ok | failed | skipped
    detail: str = ""


@dataclass
class ServiceProgress:
    name: str
    # waiting | pulling | creating | created | starting | started | healthy | running | done | failed
    stage: str = "waiting"
    note: str = ""
    one_shot: bool = False


@dataclass
class Failure:
    service: str  # "" when no single service is to blame (a file or Compose itself)
    reason: str
    log_lines: list[str] = field(default_factory=list)


@dataclass
class LaunchJob:
    id: str
    project: str
    user: str
    steps: list[Step]
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    status: str = "running"  # running | ok | failed
    services: dict[str, ServiceProgress] = field(default_factory=dict)
    failure: Failure | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=400))
    self_container: str = ""  # override of our own container id (Settings.self_container_id)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _names: dict[str, str] = field(default_factory=dict)  # container name -> service

    @property
    def done(self) -> bool:
        return self.status != "running"

    def snapshot(self) -> dict:
        """A consistent copy for a page to render while the thread goes on."""
        with self._lock:
            return {
                "id": self.id,
                "status": self.status,
                "project": self.project,
                "steps": [Step(**s.__dict__) for s in self.steps],
                "services": [ServiceProgress(**s.__dict__) for s in self.services.values()],
                "failure": self.failure,
                "output": list(self.output)[-30:],
                "elapsed": int((self.finished_at or time.time()) - self.started_at),
            }

    def _step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def mark(self, step_id: str, status: str, detail: str = "") -> None:
        with self._lock:
            step = self._step(step_id)
            step.status = status
            if detail:
                step.detail = detail

    def line(self, text: str) -> None:
        """One line of Compose output: kept, and read for per-service progress."""
        with self._lock:
            self.output.append(text)
            if m := _CONTAINER_LINE.match(text):
                service = self._names.get(m.group(1)) or _service_from_name(self.project, m.group(1))
                stage = _STAGES.get(m.group(2))
                if service in self.services and stage:
                    self.services[service].stage = stage
            elif m := _PULL_LINE.match(text):
                for svc in self.services.values():
                    if svc.name == m.group(1) and svc.stage == "waiting":
                        svc.stage = "pulling"


def _service_from_name(project: str, container: str) -> str:
    m = re.match(rf"^{re.escape(project)}[-_](.+)[-_]\d+$", container)
    return m.group(1) if m else ""


_jobs: dict[str, LaunchJob] = {}
_latest: dict[str, str] = {}
_jobs_lock = threading.Lock()


def latest(project: str) -> LaunchJob | None:
    with _jobs_lock:
        job_id = _latest.get(project)
        return _jobs.get(job_id) if job_id else None


def get(job_id: str) -> LaunchJob | None:
    return _jobs.get(job_id)


def start(
    plan: Plan,
    runner: ComposeRunner,
    engine: Engine,
    user: str,
    keep_backups: int,
    remember: Callable[[dict], None],
    on_finish: Callable[[LaunchJob], None] | None = None,
    self_container: str = "",
) -> LaunchJob:
    """Begin the launch in a background thread; StackBusy when a launch or action already runs."""
    steps = [
        Step(
            "env",
            "Write .env"
            + (
                " (the old one is backed up first)"
                if any(f.path == ".env" and f.action == "update" for f in plan.files)
                else ""
            ),
        )
    ]
    for i, prep in enumerate(plan.prepare):
        steps.append(Step(f"prepare-{i}", prep.title))
    if plan.env_copies:
        steps.append(Step("copies", "Copy .env to " + ", ".join(plan.env_copies)))
    steps += [
        Step("config", "Check the compose files"),
        Step("up", "Start the services"),
        Step("verify", "Check that every service runs"),
    ]
    job = LaunchJob(
        id=secrets.token_urlsafe(9), project=plan.stack.project, user=user, steps=steps, self_container=self_container
    )
    with _jobs_lock:  # check and register in one step: two clicks cannot start two launches
        running = _jobs.get(_latest.get(job.project, ""))
        if running is not None and not running.done:
            raise StackBusy("The launch is already running; follow it on this page.")
        _jobs[job.id] = job
        _latest[job.project] = job.id
    thread = threading.Thread(
        target=_run,
        args=(job, plan, runner, engine, keep_backups, remember, on_finish),
        name=f"launch-{job.project}",
        daemon=True,
    )
    thread.start()
    return job


def _run(job: LaunchJob, plan: Plan, runner: ComposeRunner, engine: Engine, keep: int, remember, on_finish) -> None:
    try:
        _execute(job, plan, runner, engine, keep, remember)
    except StackpilotError as e:
        _fail(job, Failure("", e.message, e.detail.splitlines()[-LOG_TAIL:] if e.detail else []))
    except Exception as e:  # the page must always learn that the launch ended
        log.exception("launch of %s failed", job.project)
        _fail(job, Failure("", f"Unexpected error: {e}"))
    finally:
        job.finished_at = time.time()
        if job.status == "running":
            job.status = "failed"
        if on_finish is not None:
            try:
                on_finish(job)
            except Exception:
                log.exception("launch on_finish hook failed")


def _fail(job: LaunchJob, failure: Failure) -> None:
    with job._lock:
        job.failure = failure
        job.status = "failed"
        for step in job.steps:
            if step.status == "running":
                step.status = "failed"
                step.detail = step.detail or failure.reason
            elif step.status == "pending":
                step.status = "skipped"


def _execute(job: LaunchJob, plan: Plan, runner: ComposeRunner, engine: Engine, keep: int, remember) -> None:
    directory = plan.stack.directory
    env_path = directory / ".env"

    job.mark("env", "running")
    result = backups.save_env(env_path, plan.env_bytes, based_on=plan.env_version, keep=keep)
    job.mark(
        "env",
        "ok",
        f"Backed up to .env_backups/{result.backup.name}."
        if result.backup
        else ("Written." if result.changed_keys else "Already as planned."),
    )

    for i, prep in enumerate(plan.prepare):
        job.mark(f"prepare-{i}", "running")
        detail = run_prepare(prep, directory, job.output.append)
        job.mark(f"prepare-{i}", "ok", detail)

    if plan.env_copies:
        job.mark("copies", "running")
        synced = backups.sync_copies(env_path, env_path.read_bytes(), plan.env_copies)
        missing = [c for c in plan.env_copies if c not in synced]
        if missing:
            raise StackpilotError(
                f"Cannot copy .env to {', '.join(missing)}: the folder does not exist. "
                "The step that fetches it did not create it."
            )
        job.mark("copies", "ok")

    if plan.lan_sites:  # issue 13: Private names get Caddy's internal CA through the file its Caddy imports
        written = caddy.write_lan_sites(directory, plan.lan_sites)
        job.line(
            f"Wrote {written.path.relative_to(directory)}: "
            + ", ".join(f"{s.hostname} -> {s.upstream}" for s in written.sites)
        )
        for var, why in written.skipped:
            job.line(f"{var} not served with tls internal: {why}.")

    job.mark("config", "running")
    remember(plan.settings)
    config = runner.config_json()
    model = model_from_json(config)
    with job._lock:
        for svc in model.active_services():
            job.services[svc.name] = ServiceProgress(svc.name, one_shot=svc.one_shot)
            if svc.container_name:
                job._names[svc.container_name] = svc.name
    job.mark("config", "ok", f"{len(job.services)} services to start.")

    job.mark("up", "running")
    # Installed inside this very stack, Compose must not recreate us mid-launch (our config may
    # have changed with the new .env): start every other service (names after `--`), ours stays.
    own = own_service(engine, plan.stack.project, job.self_container)
    planned = plan_up(list(job.services), own, base=UP_ARGS)
    if planned.note:
        job.line(f"Stackpilot runs here as the service {own!r}: it is left as it is.")
    args = list(planned.args)
    code = 0 if not args else runner.run(args, on_line=job.line, title="Setup: start the stack", user=job.user, wait=10)
    # Not `up --wait`: it exits 1 when a one-shot job nobody waits on finishes in time for it to
    # notice, and 0 with an unhealthy container. Compose starts in dependency order (waiting on
    # health where depends_on says so); Stackpilot then follows every container to the end.
    if code == 0 and plan.lan_sites and "caddy" in job.services and own != "caddy":
        job.line("Restarting caddy so it reads the LAN sites (the page comes back by itself).")
        code = runner.run(
            ["restart", "--", "caddy"],
            on_line=job.line,
            title="Setup: restart caddy",
            user=job.user,
            wait=10,
        )
    said = next((ln.strip() for ln in reversed(job.output) if ln.strip()), "")
    job.mark("up", "ok" if code == 0 else "failed", "" if code == 0 else f"Compose exited with code {code}: {said}")

    job.mark("verify", "running")
    failure = follow(job, engine, time.monotonic() + HEALTH_WAIT)
    if failure is not None:
        _fail(job, failure)
        return
    if code != 0:
        _fail(job, Failure("", f"Compose exited with code {code}.", list(job.output)[-LOG_TAIL:]))
        return
    job.mark(
        "verify",
        "ok",
        "Every service is running"
        + (" or finished its job." if any(s.stage == "done" for s in job.services.values()) else "."),
    )
    with job._lock:
        job.status = "ok"


def follow(job: LaunchJob, engine: Engine, deadline: float, interval: float = 1.0) -> Failure | None:
    """Watch the containers until each is healthy, running (no healthcheck) or done; the first
    broken one (or one still starting at the deadline) is the failure."""
    engine_containers.forget()
    while True:
        broken, pending = settle(job, engine)
        if broken or not pending:
            break
        if time.monotonic() >= deadline:
            waited = int(HEALTH_WAIT)
            broken = [(name, f"did not become healthy within {waited} s.", cid) for name, cid in pending]
            with job._lock:
                for name, _cid in pending:
                    job.services[name].stage, job.services[name].note = "failed", "still starting"
            break
        time.sleep(interval)
    if not broken:
        return None
    name, reason, container_id = broken[0]
    lines = tail_logs(engine, container_id) if container_id else []
    others = [b[0] for b in broken[1:]]
    also = f" Also failing: {', '.join(others)}." if others else ""
    return Failure(name, f"{name} {reason}{also}", lines)


def settle(job: LaunchJob, engine: Engine) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """One look at the engine: (broken services with reason and container, services still starting)."""
    found = engine_containers.project_containers(engine, job.project)
    by_service: dict[str, list] = {}
    for info in found:
        by_service.setdefault(info.service, []).append(info)
    broken: list[tuple[str, str, str]] = []
    pending: list[tuple[str, str]] = []
    with job._lock:
        for name, progress in job.services.items():
            infos = by_service.get(name) or []
            if not infos:
                progress.stage, progress.note = "failed", "not created"
                broken.append((name, "was never created (see the Compose output).", ""))
                continue
            info = infos[0]
            if info.state == "running" and info.health == "unhealthy":
                progress.stage, progress.note = "failed", "unhealthy"
                broken.append((name, "is running but its healthcheck fails (unhealthy).", info.id))
            elif info.state == "running" and info.health == "starting":
                progress.stage, progress.note = "started", "waiting for its healthcheck"
                pending.append((name, info.id))
            elif info.state == "running" and not info.health and (info.uptime() or 0) < STABLE_AFTER:
                # No healthcheck: "running" is only believed once it has lasted a moment (a
                # command that fails at once is still "running" for a few milliseconds).
                progress.stage, progress.note = "started", ""
                pending.append((name, info.id))
            elif info.state == "running":
                progress.stage = "healthy" if info.health == "healthy" else "running"
                progress.note = ""
            elif info.state == "exited" and info.exit_code == 0:
                progress.stage, progress.note = "done", "finished its job"
            elif info.state == "restarting":
                progress.stage, progress.note = "failed", "keeps restarting"
                broken.append((name, "keeps restarting.", info.id))
            elif info.state == "created":
                progress.stage, progress.note = "failed", "never started"
                broken.append((name, "was created but never started (a service it depends on failed?).", info.id))
            else:
                code = info.exit_code
                progress.stage, progress.note = "failed", f"exited with code {code}"
                broken.append((name, f"stopped with exit code {code}.", info.id))
    return broken, pending


def running_now(engine: Engine, project: str, services: list[str]) -> bool:
    """True when every one of services runs (healthy or without a healthcheck) or finished its
    job: the stack came up after all (e.g. a later Up from the Services page), so a "failed"
    launch page would be stale."""
    if not services:
        return False
    engine_containers.forget()
    found = engine_containers.project_containers(engine, project)
    by_service = {}
    for info in found:
        by_service.setdefault(info.service, info)
    for name in services:
        info = by_service.get(name)
        if info is None:
            return False
        ok = (info.state == "running" and info.health in ("", None, "healthy")) or (
            info.state == "exited" and info.exit_code == 0
        )
        if not ok:
            return False
    return True


def tail_logs(engine: Engine, container_id: str, lines: int = LOG_TAIL) -> list[str]:
    return host.tail_logs(engine, container_id, lines)


# -- preparation steps --------------------------------------------------------------------------
def check_git_url(url: str) -> str | None:
    """Why a git URL is refused, or None. Options can never be smuggled in as a URL."""
    if not url or url.startswith("-") or any(c in url for c in "\n\r\0 "):
        return "Give a git URL such as https://github.com/supabase/supabase.git."
    if not re.match(r"^(https://|http://|ssh://|git@|file://|/)", url):
        return "Use an https://, ssh://, git@ or file:// URL, or an absolute path."
    return None


def _git(args: list[str], cwd: Path | None, output: Callable[[str], None]) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
    argv = ["git", "-c", "protocol.ext.allow=never", *args]
    output("$ " + " ".join(["git", *args]))
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise StackpilotError(
            "git is not installed where Stackpilot runs, so the folder cannot be fetched.",
            detail="Fix: rebuild the Stackpilot image with --build-arg WITH_GIT=1, or run the same "
            "git command in the stack folder on the host, then Retry.",
        ) from None
    except subprocess.TimeoutExpired:
        raise StackpilotError(f"git {args[0]} did not finish within {GIT_TIMEOUT} s.") from None
    for ln in (done.stdout + done.stderr).splitlines():
        output(ln)
    if done.returncode != 0:
        raise StackpilotError(f"git {args[0]} failed.", detail=(done.stderr or done.stdout)[-3000:])


def run_prepare(step: PrepareStep, directory: Path, output: Callable[[str], None]) -> str:
    """Run one preparation step in the stack folder; returns a line saying what it did."""
    dest = (directory / step.dest).resolve()
    if directory.resolve() not in dest.parents:
        raise StackpilotError(f"The recipe's target {step.dest} is outside the stack folder.")
    if step.kind == "git":
        if problem := check_git_url(step.url):
            raise StackpilotError(problem)
        if (dest / ".git").is_dir():
            # An earlier fetch or the person's own checkout: updating it is their choice, never ours.
            note = f"{step.dest}/ is already a git checkout: used as it is (git -C {step.dest} pull to update it)."
            output(note)
            return note
        if dest.is_dir() and any(dest.iterdir()):
            # The person's own copy (unpacked by hand, a mirror): updating it is their choice.
            output(f"{step.dest}/ exists and is not a git checkout: used as it is.")
            return f"{step.dest}/ exists and is not a git checkout: used as it is (move it away to fetch a fresh one)."
        _git(["clone", "--filter=blob:none", "--no-checkout", "--", step.url, str(dest)], directory, output)
        if step.sparse:
            _git(["-C", str(dest), "sparse-checkout", "init", "--cone"], None, output)
            _git(["-C", str(dest), "sparse-checkout", "set", step.sparse], None, output)
        _git(["-C", str(dest), "checkout", *([step.ref] if step.ref else [])], None, output)
        return f"Fetched {step.sparse + '/ of ' if step.sparse else ''}{step.url}."
    if step.kind == "template":
        source = (directory / step.source).resolve()
        if directory.resolve() not in source.parents or not source.is_file():
            raise StackpilotError(f"{step.source} is missing, so {step.dest} cannot be made from it.")
        if dest.exists():
            return f"{step.dest} exists already; kept as it is."
        text = source.read_text()
        if step.replace and step.replace not in text:
            raise StackpilotError(f"{step.source} does not contain “{step.replace}” to replace.")
        text = text.replace(step.replace, secrets.token_hex(step.hex_bytes)) if step.replace else text
        atomic_write(dest, text.encode(), mode=source.stat().st_mode & 0o777)
        return f"Made {step.dest} from {step.source}."
    raise StackpilotError(f"Unknown preparation step {step.kind!r}.")
