"""Live logs of the stack's services: the viewer pages, the log WebSocket and the .log download.

The socket route is under /logs/-/ because "-" cannot start a compose service name, so no service
can shadow it. Each open socket (and each download) holds a waitress thread; the shared stream
caps (app/shares.py: per user, max_log_sockets in all, never the reserved threads) keep threads
for ordinary pages, and the viewer past a cap is told who holds what instead of hanging.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import render_template
from flask import request
from flask import session as cookie_session
from flask import url_for

from app.engine import logs as engine_logs
from app.errors import InvalidInput
from app.errors import InvalidName
from app.errors import NotFound
from app.errors import StackpilotError
from app.logstream import wire
from app.logstream.download import iter_download
from app.logstream.filters import LineFilter
from app.logstream.options import SINCE_CHOICES
from app.logstream.options import TAIL_CHOICES
from app.logstream.options import LogOptions
from app.logstream.options import from_params
from app.logstream.session import LogSession
from app.shares import ShareRefused
from app.shares import Shares
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import settings
from app.web.context import stack_engine as engine
from app.web.context import store
from app.web.security import require_role
from app.web.sockets import sock

log = logging.getLogger(__name__)
bp = Blueprint("logs", __name__, url_prefix="/logs")

SHARES = "stackpilot.shares"
SEND_INTERVAL = 0.02  # batch lines for ~20 ms between frames (latency at rest stays well under 50 ms)
SESSION_RECHECK = 5.0  # a signed-out viewer's socket closes within this long
FRAME_LINES = 2000  # a pause between frames ends early once this many lines wait
BATCH_LINES = 20000  # at most this many lines / bytes of text per batch taken from the queue
BATCH_BYTES = 1024 * 1024
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
PALETTE_SIZE = 8


def init_app(app: Flask) -> None:
    """Log sockets count against the shared stream caps (app/shares.py), made by the security
    layer; the total for log sockets is STACKPILOT_MAX_LOG_SOCKETS."""


def shares() -> Shares:
    return current_app.extensions[SHARES]


# -- what may be streamed -------------------------------------------------------------------------
def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured yet, so there are no logs to show.")
    return stack


def known_services(stack) -> list[str]:
    """The stack's services: from the compose model when it is available, else container labels."""
    names: set[str] = set()
    try:
        from app.stack.model import load_model

        names.update(load_model(runners().for_stack(stack)).service_names())
    except StackpilotError as e:  # a broken compose file must not hide logs of what runs
        log.info("compose model unavailable for logs: %s", e.message)
    names.update(engine_logs.service_names(engine(), stack.project))
    return sorted(names)


def _selected(stack, wanted: list[str]) -> tuple[list[str], list[str]]:
    """(all services, the ones asked for); any unknown name is a 404 before it reaches the engine."""
    services = known_services(stack)
    for name in wanted:
        if not SERVICE_NAME.match(name) or name not in services:
            raise InvalidName(f"There is no service {name!r} in this stack.")
    return services, (sorted(set(wanted)) if wanted else services)


def _wanted() -> list[str]:
    return [s for s in request.args.getlist("s") if s]


# -- pages ---------------------------------------------------------------------------------------
def _page(service: str | None):
    stack = _stack()
    services, selected = _selected(stack, [service] if service else _wanted())
    filter_error = ""
    try:
        options = from_params(request.args)
    except InvalidInput as e:
        filter_error = e.message
        options = LogOptions(query=request.args.get("q", ""))
    colours = {name: i % PALETTE_SIZE for i, name in enumerate(services)}
    return render_template(
        "logs/page.html",
        service=service,
        services=services,
        selected=selected,
        colours=colours,
        options=options,
        filter_error=filter_error,
        tail_choices=TAIL_CHOICES,
        since_choices=SINCE_CHOICES,
        project=stack.project,
        ws_path=urlsplit(url_for("logs.stream")).path,  # a ws rule builds ws://host/...
        download_path=url_for("logs.download"),
    )


@bp.get("/")
@require_role("viewer")
def index():
    return _page(None)


@bp.get("/<service>")
@require_role("viewer")
def service_page(service: str):
    return _page(service)


# -- the download ----------------------------------------------------------------------------------
@bp.get("/-/download")
@require_role("viewer")
def download():
    """The current selection as a .log file, streamed from the engine as it reads.

    A download holds a worker thread while the client reads it, so each person has a few at
    once (max_downloads_per_user) and all streams together leave the reserve for pages."""
    share = shares().take("download", g.user.username)  # first: a refused download costs nothing
    streams = []
    try:
        stack = _stack()
        _services, selected = _selected(stack, _wanted())
        options = from_params(request.args)
        containers = engine_logs.project_containers(engine(), stack.project, selected)
        for c in containers:
            streams.append(
                engine_logs.open_logs(engine(), c.id, follow=False, tail=options.tail, since_ns=options.since_ns)
            )
    except BaseException:
        for s in streams:
            s.close()
        share.release()
        raise
    name = selected[0] if len(selected) == 1 else stack.project
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    body = iter_download(containers, streams, timestamps=options.timestamps, query=options.query)
    response = Response(
        body,
        mimetype="text/plain",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{stamp}.log"',
            "X-Content-Type-Options": "nosniff",
        },
    )
    response.call_on_close(share.release)  # the server closes the body when the client is done
    return response


# -- the socket ------------------------------------------------------------------------------------
@bp.before_request
def _check_socket_request():
    """Refuse unknown services at the handshake (404), before a socket and a thread are spent."""
    if request.endpoint == "logs.stream":
        _selected(_stack(), _wanted())


@sock.route("/-/ws", bp=bp)
def stream(ws):
    try:
        share = shares().take("logs", g.user.username)
    except ShareRefused as e:
        ws.send(wire.message("full", text=e.message))
        ws.close(1013, "too many open log views")
        return
    session = None
    try:
        stack = _stack()
        services, selected = _selected(stack, _wanted())
        try:
            options = from_params(request.args)
        except InvalidInput as e:
            field = "q" if request.args.get("q") and _bad_filter(request.args.get("q", "")) else ""
            ws.send(wire.message("error", field=field, text=e.message))
            ws.close(1008, "invalid options")
            return
        ws.send(wire.message("hello", services=selected))
        source = engine_logs.ProjectLogs(engine(), stack.project, selected)
        session = LogSession(source, options, selected).start()
        _pump(ws, session, _signed_in_check())
    finally:
        if session is not None:
            session.close()
            session.join(timeout=3)
        share.release()


def _bad_filter(query: str) -> bool:
    try:
        LineFilter(query)
    except InvalidInput:
        return True
    return False


def _signed_in_check():
    """A check that the socket's sign-in still holds (sign-out, removed user, password reset, idle
    timeout). It never touches the session: an open log tab is not activity."""
    the_store, sid = store(), cookie_session.get("sid", "")
    idle = settings().session_idle_minutes * 60
    return lambda: bool(sid) and the_store.session_user(sid, idle, touch=False) is not None


def _pump(ws, session: LogSession, signed_in=lambda: True) -> None:
    """Drain the session into the socket: what is queued goes out at once (in frames of up to
    wire.FRAME_BYTES of text), then the pump waits SEND_INTERVAL, or until FRAME_LINES lines wait,
    so a flood travels in few large frames and never fills the queue while the pump pauses; every
    SESSION_RECHECK seconds make sure the viewer is still signed in."""
    recheck_at = time.monotonic() + SESSION_RECHECK
    queue = session.queue
    while ws.connected and not queue.closed:
        if time.monotonic() >= recheck_at:
            if not signed_in():
                ws.send(wire.message("error", field="", text="You were signed out; sign in again to see the logs."))
                ws.close(1008, "signed out")
                return
            recheck_at = time.monotonic() + SESSION_RECHECK
        batch = queue.get_batch(max_items=BATCH_LINES, max_bytes=BATCH_BYTES, wait=0.5)
        if not ws.connected:
            return
        if not batch:
            continue
        for frame in wire.encode_batch(batch):
            ws.send(frame)
        if any(getattr(item, "state", "") == "ended" for item in batch):
            return
        queue.wait_for(FRAME_LINES, SEND_INTERVAL)
