"""Interactive shells in running containers: Docker exec with a TTY through the SDK.

Why the low-level API: `exec_start(socket=True)` hands us the raw, bidirectional socket of the
exec (with a TTY the stream is not multiplexed), so keystrokes go in and output comes out as bytes
with no buffering of ours; `exec_resize` follows the browser's window. Nothing here knows the web.

- ``service_container(engine, project, service)``: the service's running container (typed errors
  saying why there is no shell otherwise: not created, stopped, restarting).
- ``pick_shell(engine, container_id, wanted)``: the first shell that exists (bash, then sh) or the
  one asked for; NoShell when the image has none (distroless).
- ``Terminal``: one exec session: ``read()`` / ``write()`` / ``resize()`` / ``close()`` / ``exit_code()``.
- ``Output`` (a command's stdout as chunks) and ``feed`` (a stream into a command's stdin: a dump
  loaded back with psql or mysql).
"""

from __future__ import annotations

import logging
import re
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.engine import Engine
from app.engine.containers import ONEOFF_LABEL
from app.engine.containers import PROJECT_LABEL
from app.engine.containers import SERVICE_LABEL
from app.engine.logs import STDERR
from app.engine.logs import STDOUT
from app.engine.logs import split_frames
from app.errors import EngineUnavailable
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import StackpilotError

log = logging.getLogger(__name__)

SHELLS = ("bash", "sh")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$")
READ_SIZE = 65536
MISSING_EXIT = (126, 127)  # the runtime's "executable file not found" / "not executable"


class NoShell(StackpilotError):
    """The container cannot give a shell: stopped, or an image without one (distroless)."""

    status = 409


@dataclass(frozen=True)
class Target:
    """The container a terminal opens in, and what the page shows about it."""

    id: str
    name: str
    service: str
    workdir: str
    user: str  # the image's configured user ("" = root)


def validate_user(user: str) -> str:
    user = user.strip()
    if user and not USER_RE.match(user):
        raise InvalidInput("A user is a name or number, optionally with :group (e.g. www-data or 1000:1000).")
    return user


def service_container(engine: Engine, project: str, service: str) -> Target:
    """The service's first running container; NoShell with the reason when none runs."""

    def find(client):
        filters = {"label": [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={service}"]}
        found = client.api.containers(all=True, filters=filters)
        return [c for c in found if (c.get("Labels") or {}).get(ONEOFF_LABEL, "False") != "True"]

    found = engine.call(find, what="containers")
    if not found:
        raise NoShell(f"{service} has no container yet: start it first, then open a shell.")
    running = [c for c in found if c.get("State") == "running"]
    if not running:
        state = found[0].get("State", "unknown")
        why = "it is restarting (it keeps exiting)" if state == "restarting" else f"it is {state}"
        raise NoShell(f"{service} is not running ({why}): a shell needs a running container. Start it first.")
    cid = sorted(running, key=lambda c: c.get("Names", [""])[0])[0]["Id"]
    info = engine.call(lambda c: c.api.inspect_container(cid), what="container")
    config = info.get("Config") or {}
    return Target(
        id=cid,
        name=info.get("Name", "").lstrip("/"),
        service=service,
        workdir=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
    )


def _exec_code(engine: Engine, container_id: str, cmd: list[str], user: str = "") -> int:
    def run(client):
        ex = client.api.exec_create(container_id, cmd, stdout=True, stderr=True, user=user)
        client.api.exec_start(ex["Id"])
        return client.api.exec_inspect(ex["Id"]).get("ExitCode")

    code = engine.call(run, what="container")
    return 127 if code is None else int(code)


def pick_shell(engine: Engine, container_id: str, wanted: str = "") -> str:
    """The shell to run: `wanted` if it exists, else bash, then sh. NoShell when none exists."""
    candidates = [wanted] if wanted else list(SHELLS)
    for shell in candidates:
        if shell not in SHELLS:
            raise InvalidInput(f"Choose one of the shells: {', '.join(SHELLS)}.")
        if _exec_code(engine, container_id, [shell, "-c", "exit 0"]) not in MISSING_EXIT:
            return shell
    if wanted:
        raise NoShell(f"There is no {wanted} in this container; try {' or '.join(s for s in SHELLS if s != wanted)}.")
    raise NoShell(
        "This image has no shell (neither bash nor sh: a distroless or scratch image). "
        "Use its logs, or run its own commands with Run a command."
    )


class Terminal:
    """One exec session with a TTY; its socket is ours until close()."""

    def __init__(
        self, engine: Engine, target: Target, shell: str, user: str = "", cols: int = 80, rows: int = 24
    ) -> None:
        self.engine = engine
        self.target = target
        self.shell = shell
        self.user = user

        def create(client):
            env = ["TERM=xterm-256color"]  # no COLUMNS/LINES: they would pin the size over resizes
            ex = client.api.exec_create(
                target.id, [shell], stdin=True, tty=True, user=user, environment=env, workdir=target.workdir
            )
            sock = client.api.exec_start(ex["Id"], tty=True, socket=True)
            return ex["Id"], sock

        self.exec_id, raw = engine.call(create, what="container")
        self._holder = raw  # the SDK's wrapper keeps the HTTP response (and the socket) alive
        self.sock: socket.socket = getattr(raw, "_sock", raw)
        self.sock.settimeout(None)  # the client's API timeout must not end an idle shell
        self.closed = False
        self.resize(cols, rows)

    def read(self) -> bytes:
        """The next output bytes; b"" when the shell ended or the session was closed."""
        try:
            return self.sock.recv(READ_SIZE)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.close()

    def resize(self, cols: int, rows: int) -> None:
        cols, rows = max(1, min(int(cols), 1000)), max(1, min(int(rows), 500))
        try:
            self.engine.call(lambda c: c.api.exec_resize(self.exec_id, height=rows, width=cols), what="exec")
        except (StackpilotError, NotFound) as e:  # the shell ended between two resizes
            log.debug("exec resize: %s", e.message)

    def exit_code(self) -> int | None:
        try:
            return self.engine.call(lambda c: c.api.exec_inspect(self.exec_id), what="exec").get("ExitCode")
        except StackpilotError:
            return None

    def close(self) -> None:
        """End the session: the shell gets a hang-up when its TTY closes."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for s in (self.sock, self._holder):
            try:
                s.close()
            except OSError:
                pass


def has_command(engine: Engine, container_id: str, name: str) -> bool:
    """Whether `name` is on the container's PATH (run through its sh: no sh, no)."""
    try:
        return _exec_code(engine, container_id, ["sh", "-c", f"command -v {name} >/dev/null"]) == 0
    except StackpilotError:
        return False


class Output:
    """The stdout of a one-off exec as chunks (stderr kept apart, its tail for the error message);
    `exit_code` once the stream is drained."""

    def __init__(self, engine: Engine, container_id: str, cmd: list[str], user: str = "") -> None:
        self.engine = engine
        self.stderr = b""

        def start(client):
            ex = client.api.exec_create(container_id, cmd, stdout=True, stderr=True, user=user)
            return ex["Id"], client.api.exec_start(ex["Id"], stream=True, demux=True)

        self.exec_id, self._stream = engine.call(start, what="container")

    def __iter__(self):
        for out, err in self._stream:
            if err:
                self.stderr = (self.stderr + err)[-4000:]
            if out:
                yield out

    @property
    def exit_code(self) -> int | None:
        return self.engine.call(lambda c: c.api.exec_inspect(self.exec_id), what="exec").get("ExitCode")


@dataclass
class Fed:
    """How a command fed through stdin ended: its exit code, and the tails of its output."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes


STALL_SECONDS = 600.0  # no byte in or out for this long: the command is stuck (a lock it waits on)
_WAIT = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class FeedStalled(StackpilotError):
    """The fed command neither read nor wrote anything for too long; its session was cut."""

    status = 504


def feed(
    engine: Engine,
    container_id: str,
    cmd: list[str],
    chunks,
    user: str = "",
    tail: int = 16000,
    stall: float = STALL_SECONDS,
    on_stderr: Callable[[bytes], None] | None = None,
) -> Fed:
    """Run `cmd` in the container with `chunks` (an iterable of bytes) streamed into its stdin while its
    stdout/stderr are read (a full pipe would block it), keeping their last `tail` bytes; `on_stderr`
    sees every stderr piece as it comes. A command that exits early stops the feeding (no error of ours).

    Stdin is never half-closed: on a TLS engine the SDK hands us the SSLSocket itself, whose shutdown()
    drops the TLS layer (what follows would be read as raw records). So `chunks` must end the command's
    input in-band (psql's and mysql's `\\q`), and the stream ends when the command exits. One thread
    reads and writes through select(): a TLS connection must not be used by two threads at once. The
    same code serves the local socket and the SSH transport's socketpair.

    Nothing moving either way for `stall` seconds raises FeedStalled; an error of the connection raises
    EngineUnavailable; an error of `chunks` (a damaged archive) is raised as it is. In each case the
    socket is closed without an end of input being sent: the engine then closes the command's stdin.
    (psql has by then run every complete statement it read, each committed on its own, and at EOF it
    sends what is left in its buffer too, so a cut dump is partly applied: the caller names the safety
    dump.)"""

    def start(client):
        ex = client.api.exec_create(container_id, cmd, stdin=True, stdout=True, stderr=True, user=user)
        return ex["Id"], client.api.exec_start(ex["Id"], socket=True)

    exec_id, raw = engine.call(start, what="container")
    sock: socket.socket = getattr(raw, "_sock", raw)
    outputs = {STDOUT: b"", STDERR: b""}
    frames = bytearray()
    source = iter(chunks)
    pending = memoryview(b"")
    sending = True
    last = time.monotonic()
    try:
        sock.setblocking(False)
        while True:
            while sending and not pending:
                try:
                    pending = memoryview(next(source))
                except StopIteration:
                    sending = False
            moved = False
            try:
                buffered = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                readable, writable, _ = (
                    ([sock], [], []) if buffered else select.select([sock], [sock] if pending else [], [], 1.0)
                )
                if readable:
                    try:
                        data = sock.recv(READ_SIZE)
                    except _WAIT:
                        data = None
                    if data == b"":
                        break  # the command exited and the engine ended the stream
                    if data:
                        moved = True
                        frames += data
                        found, used = split_frames(frames)
                        del frames[:used]
                        for kind, payload in found:
                            outputs[kind] = (outputs[kind] + payload)[-tail:]
                            if kind == STDERR and on_stderr is not None:
                                on_stderr(payload)
                if writable and pending:
                    try:
                        pending = pending[sock.send(pending[:READ_SIZE]) :]
                        moved = True
                    except _WAIT:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        pending, sending = memoryview(b""), False  # it exited: its exit code and stderr say why
            except OSError as e:
                raise EngineUnavailable(f"The connection to the engine broke while feeding the command: {e}") from e
            now = time.monotonic()
            if moved:
                last = now
            elif now - last > stall:
                raise FeedStalled(
                    f"The command read and wrote nothing for {int(stall)} s (waiting on a lock?); its session was cut."
                )
    finally:
        for s in (sock, raw):
            try:
                s.close()
            except OSError:
                pass
    code = None
    for _ in range(50):  # the stream ends a moment before the engine records the exit
        info = engine.call(lambda c: c.api.exec_inspect(exec_id), what="exec")
        if not info.get("Running"):
            code = info.get("ExitCode")
            break
        time.sleep(0.1)
    return Fed(code, outputs[STDOUT], outputs[STDERR])
