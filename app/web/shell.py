"""A shell in a running service container (xterm.js in the page, Docker exec with a TTY behind a
WebSocket), and one-off commands run through Compose into the run panel.

Who: admins; operators too when the `shell` setting grants them (`{"operators": true}` in the
store, set by an admin in the Shell section of the Users page, with the idle timeout). The socket
follows the log socket's rules: session and Origin checked at the handshake (app/web/security.py),
a share of the stream threads per user and in all (kind "terminal", app/shares.py), the sign-in
rechecked while it runs, and an idle timeout. The audit log records who opened which container's
shell, when, and for how long, never what was typed.

Wire: the server sends output as binary frames and control messages as JSON text
({"t": "hello"|"exit"|"closed"|"error"|"full", ...}); the browser sends keystrokes as binary
frames (or {"t": "in", "d": text}) and {"t": "resize", "cols", "rows"}.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
import time
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import render_template
from flask import request
from flask import session as cookie_session
from flask import url_for
from simple_websocket import ConnectionClosed

from app import compose
from app.engine import exec as engine_exec
from app.errors import Forbidden
from app.errors import InvalidInput
from app.errors import InvalidName
from app.errors import NotFound
from app.errors import StackBusy
from app.errors import StackpilotError
from app.shares import ShareRefused
from app.stack.model import load_model
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import settings
from app.web.context import stack_engine
from app.web.context import store
from app.web.security import CSP
from app.web.security import has_role
from app.web.security import require_role
from app.web.sockets import sock

log = logging.getLogger(__name__)
bp = Blueprint("shell", __name__, url_prefix="/shell")

SHARES = "stackpilot.shares"
SETTING = "shell"
MAX_TERMINALS = 8  # open terminals on the whole server (per user: max_terminals_per_user)
IDLE_SECONDS = 15 * 60  # a terminal nobody typed in for this long is closed
SESSION_RECHECK = 2.0  # a signed-out user's terminal closes within this long
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
RECENT_KEEP = 8
MAX_COMMAND = 2000


def init_app(app: Flask) -> None:
    """Terminals get a total of their own in the shared stream caps (the per-user cap is a setting);
    the admin's form for the `shell` setting is served outside the per-stack paths (it is global)."""
    app.extensions[SHARES].per_kind.setdefault("terminal", MAX_TERMINALS)
    app.register_blueprint(settings_bp)
    app.jinja_env.globals["shell_options"] = options  # auth/users.html includes shell/_settings.html
    app.jinja_env.globals["may_open_shell"] = may_open_shell  # services/_row.html: the Shell menu entry


def options() -> dict:
    """The `shell` setting: operators allowed?, idle timeout in seconds."""
    raw = store().get_setting(SETTING, {}) or {}
    idle = raw.get("idle_seconds", IDLE_SECONDS)
    return {
        "operators": bool(raw.get("operators")),
        "idle_seconds": max(1, int(idle)) if isinstance(idle, int | float) else IDLE_SECONDS,
    }


def may_open_shell() -> bool:
    """Admins, and operators when granted (read once per request: the services table asks per row)."""
    if "may_open_shell" not in g:
        g.may_open_shell = has_role("admin") or (has_role("operator") and options()["operators"])
    return g.may_open_shell


@bp.before_request
def _may_use():
    """Admins always; operators only when the setting grants them (checked before any socket)."""
    if may_open_shell():
        if request.endpoint == "shell.stream":
            _service(request.args.get("s", ""))  # unknown service: 404 at the handshake
        return None
    raise Forbidden("Shells and commands need the admin role (an admin may grant operators in the settings).")


def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured yet, so there is no container to open a shell in.")
    return stack


def _service(name: str) -> str:
    if not SERVICE_NAME.match(name or ""):
        raise InvalidName(f"There is no service {name!r} in this stack.")
    return load_model(runners().for_stack(_stack())).require(name).name


def _recent_key(service: str) -> str:
    stack = _stack()
    return f"shell.recent:{stack.engine}/{stack.project}/{service}"


def recent_commands(service: str) -> list[dict]:
    return list(store().get_setting(_recent_key(service), []) or [])


def _remember(service: str, entry: dict) -> None:
    key = _recent_key(service)
    kept = [e for e in store().get_setting(key, []) or [] if e != entry]
    store().set_setting(key, [entry, *kept][:RECENT_KEEP])


# -- the page --------------------------------------------------------------------------------------
@bp.get("/<service>")
@require_role("operator")
def page(service: str):
    name = _service(service)
    stack = _stack()
    target, why, shell = None, "", ""
    try:
        target = engine_exec.service_container(stack_engine(), stack.project, name)
        shell = engine_exec.pick_shell(stack_engine(), target.id)
    except engine_exec.NoShell as e:
        why = e.message
    nonce = _nonce()
    html = render_template(
        "shell/page.html",
        service=name,
        target=target,
        why=why,
        shell=shell,
        shells=engine_exec.SHELLS,
        ws_path=urlsplit(url_for("shell.stream")).path,
        style_nonce=nonce,
        recent=recent_commands(name),
        run_path=url_for("shell.run_command", service=name),
        idle_minutes=max(1, options()["idle_seconds"] // 60),
    )
    # xterm.js writes its measured sizes into <style> elements: allow those (stamped with this
    # response's nonce by static/terminal.js), nothing else inline.
    return html, 200, {"Content-Security-Policy": CSP.replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")}


def _nonce() -> str:
    import secrets

    return secrets.token_urlsafe(16)


# -- one-off commands --------------------------------------------------------------------------------
def parse_command(text: str, use_shell: bool) -> list[str]:
    """The argument list of a command line (no shell unless asked: `sh -c` gets the text as is)."""
    text = text.strip()
    if not text:
        raise InvalidInput("Type a command to run.")
    if len(text) > MAX_COMMAND or "\x00" in text:
        raise InvalidInput(f"A command is at most {MAX_COMMAND} characters, without NUL bytes.")
    if use_shell:
        return ["sh", "-c", text]
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise InvalidInput(f"The command's quoting is unbalanced ({e}); fix it or choose sh -c.") from None
    return argv


@bp.post("/<service>/run")
@require_role("operator")
def run_command(service: str):
    """`compose exec -T` in the running container, or `compose run --rm` in a new one; the output
    streams into the run panel (services/_progress.html) with the exit code."""
    name = _service(service)
    stack = _stack()
    text = request.form.get("command", "")
    use_shell = request.form.get("shell") == "1"
    mode = request.form.get("mode", "exec")
    if mode not in ("exec", "run"):
        raise InvalidInput("Choose exec (in the running container) or run (a new one-off container).")
    argv = parse_command(text, use_shell)
    head = ["exec", "-T"] if mode == "exec" else ["run", "--rm", "-T", "--no-deps"]
    user = g.user.username
    title = f"{'Exec in' if mode == 'exec' else 'Run --rm'} {name}: {' '.join(argv)[:80]}"
    target = f"{name}: {' '.join(argv)[:300]}"
    the_store = store()

    def done(run: compose.Run) -> None:
        result = "ok" if run.ok else ("timeout" if run.timed_out else f"failed (exit {run.exit_code})")
        the_store.audit(run.user, f"command.{mode}", target, result)

    try:
        run = runners().for_stack(stack).start([*head, "--", name, *argv], title=title, user=user, on_done=done)
    except StackBusy:
        the_store.audit(user, f"command.{mode}", target, "refused: busy")
        raise
    _remember(name, {"command": text.strip(), "shell": use_shell, "mode": mode})
    lines, after = run.lines_since(0)
    return render_template("services/_progress.html", run=run, lines=lines, after=after)


# -- the admin's settings: operators allowed?, idle timeout --------------------------------------------
settings_bp = Blueprint("shell_settings", __name__, url_prefix="/settings/shell")
IDLE_MINUTES = (1, 1440)


def parse_idle_minutes(raw: str) -> int:
    low, high = IDLE_MINUTES
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InvalidInput(
            f"The idle timeout is a whole number of minutes from {low} to {high} (a day); {text or 'nothing'!r} "
            "is not. Nothing was changed."
        )
    return int(text)


@settings_bp.post("/")
@require_role("admin")
def save_settings():
    """Grant (or take back) shells and commands for operators, and set the idle timeout; audited.
    Bad input changes nothing and shows the form again as typed, with the reason (422)."""
    operators = request.form.get("operators") == "1"
    raw = request.form.get("idle_minutes", "")
    try:
        minutes = parse_idle_minutes(raw)
    except InvalidInput as e:
        typed = {"operators": operators, "idle_minutes": raw.strip()[:20]}
        return render_template("shell/_settings.html", shell=options(), typed=typed, error=e.message), 422
    before = options()
    current = dict(store().get_setting(SETTING, {}) or {})
    current.update({"operators": operators, "idle_seconds": minutes * 60})
    store().set_setting(SETTING, current)
    changes = []
    if before["operators"] != operators:
        changes.append("operators " + ("granted" if operators else "no longer granted"))
    if before["idle_seconds"] != minutes * 60:
        changes.append(f"idle timeout {before['idle_seconds'] // 60 or 1} -> {minutes} min")
    store().audit(g.user.username, "shell.settings", "shell", "ok", "; ".join(changes) or "unchanged")
    return render_template("shell/_settings.html", shell=options(), saved=True)


# -- the socket ------------------------------------------------------------------------------------
def _signed_in_check():
    the_store, sid = store(), cookie_session.get("sid", "")
    idle = settings().session_idle_minutes * 60
    return lambda: bool(sid) and the_store.session_user(sid, idle, touch=False) is not None


def _send(ws, kind: str, **fields) -> None:
    try:
        ws.send(json.dumps({"t": kind, **fields}))
    except (ConnectionClosed, OSError):
        pass


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() else default


@sock.route("/-/ws", bp=bp)
def stream(ws):
    user = g.user.username
    try:
        share = current_app.extensions[SHARES].take("terminal", user)
    except ShareRefused as e:
        _send(ws, "full", text=e.message)
        ws.close(1013, "too many open terminals")
        return
    terminal = None
    opened = time.monotonic()
    reason = "closed by the browser"
    audit_target = ""
    the_store = store()
    try:
        stack = _stack()
        service = _service(request.args.get("s", ""))
        try:
            login = engine_exec.validate_user(request.args.get("user", ""))
            target = engine_exec.service_container(stack_engine(), stack.project, service)
            shell = engine_exec.pick_shell(stack_engine(), target.id, request.args.get("shell", ""))
            terminal = engine_exec.Terminal(
                stack_engine(), target, shell, login, cols=_int_arg("cols", 80), rows=_int_arg("rows", 24)
            )
        except StackpilotError as e:
            _send(ws, "error", text=e.message)
            ws.close(1008, "no shell")
            return
        audit_target = f"{service} ({target.name})"
        the_store.audit(user, "shell.open", audit_target, "ok", f"{shell} as {login or target.user or 'root'}")
        idle = options()["idle_seconds"]
        _send(
            ws,
            "hello",
            container=target.name,
            shell=shell,
            workdir=target.workdir,
            user=login or target.user or "root",
            idle=idle,  # what _pump below closes the terminal after (the page tells the user)
        )
        reason = _pump(ws, terminal, _signed_in_check(), idle)
    finally:
        if terminal is not None:
            terminal.close()
            seconds = time.monotonic() - opened
            the_store.audit(user, "shell.close", audit_target, "ok", f"{seconds:.0f} s; {reason}")
        share.release()


def _pump(ws, terminal, signed_in, idle_seconds: float) -> str:
    """Copy output to the socket (a reader thread) and keystrokes to the shell (this thread) until
    the shell ends, the browser leaves, the sign-in ends or nobody typed for idle_seconds."""
    ended = threading.Event()

    def reader() -> None:
        try:
            while True:
                data = terminal.read()
                if not data:
                    break
                ws.send(data)
        except (ConnectionClosed, OSError):
            pass
        finally:
            ended.set()

    threading.Thread(target=reader, name="terminal-out", daemon=True).start()
    last_input = time.monotonic()
    recheck_at = time.monotonic() + SESSION_RECHECK
    while ws.connected:
        if ended.is_set():
            code = terminal.exit_code()
            _send(ws, "exit", code=code)
            ws.close(1000, "shell ended")
            return f"shell ended (exit {code})"
        now = time.monotonic()
        if now - last_input >= idle_seconds:
            _send(ws, "closed", text=f"Closed after {idle_seconds:.0f} s without typing. Reconnect to go on.")
            ws.close(1000, "idle")
            return "idle timeout"
        if now >= recheck_at:
            if not signed_in():
                _send(ws, "closed", text="You were signed out; sign in again to use the shell.")
                ws.close(1008, "signed out")
                return "signed out"
            recheck_at = now + SESSION_RECHECK
        try:
            message = ws.receive(timeout=0.5)
        except ConnectionClosed:
            break
        if message is None:
            continue
        if isinstance(message, bytes):
            terminal.write(message)
            last_input = time.monotonic()
            continue
        try:
            control = json.loads(message)
        except ValueError:
            continue
        if not isinstance(control, dict):
            continue
        if control.get("t") == "in" and isinstance(control.get("d"), str):
            terminal.write(control["d"].encode())
            last_input = time.monotonic()
        elif control.get("t") == "resize":
            cols, rows = control.get("cols"), control.get("rows")
            if isinstance(cols, int) and isinstance(rows, int):
                terminal.resize(cols, rows)
    return "closed by the browser"
