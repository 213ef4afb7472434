"""The table: the full page, and the polled fragment that swaps only what changed.

Every swappable part of the page carries its version in a hidden input named "v"
("layout:…", "counts:…", "banner:…", "r-<slug>:…"); the poller sends them back and gets only the
parts whose version moved, as out-of-band swaps (rows as their volatile cells, so the name and the
actions menu of a row are never replaced and an open menu stays open). Nothing moved: 204.
"""

from __future__ import annotations

import hashlib
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

from flask import render_template
from flask import request
from markupsafe import Markup
from markupsafe import escape

from app.stack.services import SORT_KEYS
from app.stack.services import counts
from app.stack.services import group_rows
from app.stack.services import sort_rows
from app.web.context import runners
from app.web.security import has_role
from app.web.security import own_origin
from app.web.services import Snapshot
from app.web.services import bp
from app.web.services import snapshot

RECENT_RUN_SECONDS = 600  # a finished action's panel is shown again on reload for this long
NAME_MARK, SLUG_MARK = "~N~", "~S~"  # stand-ins: not in [A-Za-z0-9._-], left alone by escaping


def _digest(value: object) -> str:
    return hashlib.blake2s(repr(value).encode(), digest_size=5).hexdigest()


def view_options() -> tuple[str, str]:
    sort = request.args.get("sort", "name")
    group = request.args.get("group", "group")
    return (sort if sort in SORT_KEYS else "name"), (group if group in ("group", "none") else "group")


def browser_host() -> str:
    """The host name the browser used to reach us: published ports are linked on it."""
    host = urlsplit(own_origin()).hostname or "localhost"
    return f"[{host}]" if ":" in host else host


def table_context(snap: Snapshot) -> dict:
    sort, group = view_options()
    groups = group_rows(sort_rows(snap.rows, sort), group)
    can_act = has_role("operator") and snap.model_error is None  # no action without readable files
    layout = _digest((sort, group, can_act, [(g, [r.name for r in rows]) for g, rows in groups]))
    drifted = [r for r in snap.rows if r.drift]
    banner = _digest(
        (
            snap.engine_error,
            str(snap.model_error and snap.model_error.message),
            snap.stack and runners().for_stack(snap.stack).busy(),
            [(r.name, r.drift) for r in drifted],
        )
    )
    state_counts = counts(snap.rows)
    return {
        "snap": snap,
        "stack": snap.stack,
        "model": snap.model,
        "groups": groups,
        "sort": sort,
        "group": group,
        "counts": state_counts,
        "can_act": can_act,
        "host": browser_host(),
        "drifted": drifted,
        "versions": {"layout": layout, "counts": _digest(state_counts), "banner": banner},
        "busy": snap.stack and runners().for_stack(snap.stack).busy(),
    }


@bp.app_template_global("row_menu")
def row_menu(menus: dict, macro, r, is_self: bool, built, upd) -> Markup:
    """A row's actions menu (the `actions` macro of services/_row.html) for this row.

    The menu is the same for every row in the same situation, apart from the service's name and
    slug: it is rendered once per situation and render (`menus`, one dict per render) with
    stand-ins for those, then each row fills them in, escaped as {{ }} would. 200 rows cost 200
    macro calls and ~10k escapes before, now 1-3 calls and 200 str.replace pairs. The key must hold
    everything the macro reads besides the name and slug."""
    key = (
        r.state in ("not-created", "inactive"),
        r.active,
        bool(is_self),
        bool(built),
        (upd.ref, tuple(upd.services)) if upd and upd.state == "update" else None,
        bool(r.image) and "@" not in r.image,
    )
    html = menus.get(key)
    if html is None:
        stand_in = SimpleNamespace(name=NAME_MARK, slug=SLUG_MARK, state=r.state, active=r.active, image=r.image)
        html = menus[key] = str(macro(stand_in, is_self, built, upd))
    return Markup(html.replace(NAME_MARK, escape(r.name)).replace(SLUG_MARK, escape(r.slug)))


@bp.get("/")
@bp.get("/services")
def index():
    snap = snapshot()
    ctx = table_context(snap)
    run = None
    if snap.stack is not None:
        last = next(iter(runners().for_stack(snap.stack).recent_runs(1)), None)
        recent = last is not None and last.finished_at and time.time() - last.finished_at < RECENT_RUN_SECONDS
        run = runners().for_stack(snap.stack).current_run() or (last if recent else None)
    after = run.lines_since(0)[1] if run else 0
    return render_template(
        "services/page.html",
        run=run,
        lines=run.lines_since(0)[0] if run else [],
        after=after,
        query=request.args.get("q", "")[:200],
        **ctx,
    )


@bp.get("/services/table")
def table():
    """The poll: out-of-band swaps of the parts whose version changed (204 when none did)."""
    snap = snapshot()
    ctx = table_context(snap)
    sent = {}
    for item in request.args.getlist("v"):
        key, _, value = item.partition(":")
        sent[key] = value
    changed_layout = sent.get("layout") != ctx["versions"]["layout"]
    rows = (
        []
        if changed_layout
        else [row for _, members in ctx["groups"] for row in members if sent.get(f"r-{row.slug}") != row.version]
    )
    parts = {
        "layout": changed_layout,
        "counts": sent.get("counts") != ctx["versions"]["counts"],
        "banner": sent.get("banner") != ctx["versions"]["banner"],
    }
    if not rows and not any(parts.values()):
        return "", 204
    return render_template("services/_updates.html", changed_rows=rows, parts=parts, oob=True, **ctx)
