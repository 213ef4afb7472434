"""Push for the service table: one Server-Sent Events stream per open page, woken by the engine's
event stream (one listener per engine, app/engine/events.py) and by fresh stats samples, sending
only the cells that changed since the page last got them.

Why SSE: one-way, plain HTTP, reconnects by itself, and htmx swaps what it carries with the same
out-of-band markup the poll returns (templates/services/_updates.html), so one source of markup
serves both. Each open stream holds a waitress thread: streams take a share of the threads
(app/shares.py, kind "live", capped per kind and per person); past the cap the answer is 204,
which makes the browser's EventSource stop, and the page keeps its (slower) poll instead.
"""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import render_template
from flask import request
from flask import session as cookie_session
from flask import stream_with_context

from app import wsbridge
from app.engine.events import EventListeners
from app.errors import StackpilotError
from app.shares import ShareRefused
from app.web.context import current_stack
from app.web.context import settings
from app.web.context import stack_engine as engine
from app.web.context import store
from app.web.security import require_role
from app.web.services import LISTENERS
from app.web.services import snapshot
from app.web.services.table import table_context

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__, url_prefix="/live")

SAMPLERS = "stackpilot.samplers"
SHARES = "stackpilot.shares"
REFRESH = 2.0  # without an event, cells are refreshed (stats, uptime) this often
KEEPALIVE = 1.0  # a comment this often: a closed page is noticed within ~2 s (3 bytes each)
EVENT_SETTLE = 0.05  # an event usually comes in a burst (kill, die, stop): take it whole
SESSION_RECHECK = 5.0
PER_USER = 8
CELL = re.compile(r'<td id="([^"]+)"[^>]*>.*?</td>', re.S)
VERSION_INPUT = re.compile(r'<input type="hidden" name="v" value="[^"]*">')


def init_app(app: Flask) -> None:
    """One event listener and one stats sampler per engine, stopped at shutdown; a budget of threads."""
    listeners = EventListeners()
    app.extensions[LISTENERS] = listeners
    hooks = app.extensions.setdefault("stackpilot.shutdown", [])
    hooks.append(listeners.stop)
    shares = app.extensions.get(SHARES)
    if shares is not None:
        # A quarter of the streaming threads for live pages: log views and downloads keep theirs.
        shares.per_kind.setdefault("live", max(2, shares.streams // 4))
        shares.per_user.setdefault("live", PER_USER)


@bp.get("/services")
@require_role("viewer")
def services():
    """The table's push channel (text/event-stream); 204 when there is no room or no stack."""
    stack = current_stack()
    if stack is None:
        return "", 204
    try:
        share = current_app.extensions[SHARES].take("live", g.user.username)
    except ShareRefused:
        return "", 204
    try:
        sub = current_app.extensions[LISTENERS].get(engine()).subscribe(stack.project)
    except Exception:
        share.release()
        raise
    sent: dict[str, str] = {}
    for item in request.args.getlist("v"):
        key, _, value = item.partition(":")
        sent[key] = value
    the_store, sid = store(), cookie_session.get("sid", "")
    idle = settings().session_idle_minutes * 60

    def signed_in() -> bool:
        return bool(sid) and the_store.session_user(sid, idle, touch=False) is not None

    closer = _Closer(sub)
    wsbridge.OPEN_SOCKETS.add(closer)  # SIGTERM ends the stream like a WebSocket, not 5 s later

    def stream():
        cells: dict[str, str] = {}
        try:
            yield "retry: 5000\n\n"
            recheck_at = time.monotonic() + SESSION_RECHECK
            refresh_at = 0.0
            quiet_since = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= recheck_at:
                    if not signed_in():
                        yield "event: end\ndata: signed out\n\n"
                        return
                    recheck_at = now + SESSION_RECHECK
                changed = sub.wait(max(0.0, min(KEEPALIVE, refresh_at - now)))
                if sub.closed:
                    return
                if changed:
                    sub.wait(EVENT_SETTLE)
                if changed or time.monotonic() >= refresh_at:
                    refresh_at = time.monotonic() + REFRESH
                    html = changes(sent, cells)
                    if html:
                        lines = html.split("\n")
                        if "<pre" not in html:  # the template's blank lines are bytes for nothing
                            lines = [line for line in lines if line.strip()]
                        yield "event: cells\n" + "".join(f"data: {line}\n" for line in lines) + "\n"
                        quiet_since = time.monotonic()
                        continue
                if time.monotonic() - quiet_since >= KEEPALIVE:
                    yield ":\n\n"
                    quiet_since = time.monotonic()
        finally:
            wsbridge.OPEN_SOCKETS.discard(closer)
            sub.close()
            share.release()

    return Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _Closer:
    """Stands in the server's list of open sockets for one event stream: shutdown() ends it."""

    def __init__(self, sub) -> None:
        self.sub = sub

    def shutdown(self, how: int) -> None:
        self.sub.close()


def changes(sent: dict[str, str], cells: dict[str, str]) -> str:
    """The out-of-band markup of what moved since `sent` (updated in place); cells whose markup is
    the same as last sent (`cells`, by id) are left out."""
    try:
        snap = snapshot()  # leases the stats sampler for this project, as the poll does
    except StackpilotError as e:
        log.info("live table refresh failed: %s", e.message)
        return ""
    ctx = table_context(snap)
    versions = ctx["versions"]
    parts = {key: sent.get(key) != versions[key] for key in ("layout", "counts", "banner")}
    rows = (
        []
        if parts["layout"]
        else [row for _, members in ctx["groups"] for row in members if sent.get(f"r-{row.slug}") != row.version]
    )
    if not rows and not any(parts.values()):
        return ""
    for key, changed in parts.items():
        if changed:
            sent[key] = versions[key]
    if parts["layout"]:
        cells.clear()
        for _, members in ctx["groups"]:
            for row in members:
                sent[f"r-{row.slug}"] = row.version
    for row in rows:
        sent[f"r-{row.slug}"] = row.version
    html = render_template("services/_updates.html", changed_rows=rows, parts=parts, oob=True, **ctx)
    return _only_changed(html, cells) if rows else html


def _only_changed(html: str, cells: dict[str, str]) -> str:
    """Drop the row cells that are the same as last sent (the hidden version input aside)."""

    def keep(m: re.Match) -> str:
        key = VERSION_INPUT.sub("", m.group(0))
        if cells.get(m.group(1)) == key:
            return ""
        cells[m.group(1)] = key
        return m.group(0)

    start = html.rfind("<template>")
    if start < 0:
        return html
    body = CELL.sub(keep, html[start:])
    if not CELL.search(body):
        body = ""
    head = html[:start]
    return head + body if (head.strip() or body) else ""
