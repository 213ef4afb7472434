"""The Activity page: the audit log, newest first, filtered and paged; each reader sees only the
stacks they may see (app.activity decides the rows)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from flask import Blueprint
from flask import render_template
from flask import request

from app import activity
from app.web.context import current_user
from app.web.context import registry
from app.web.context import runners
from app.web.context import store
from app.web.security import has_role
from app.web.security import require_role

bp = Blueprint("activity", __name__, url_prefix="/activity")


@bp.app_template_filter("activity_time")
def activity_time(ts: float) -> str:
    """A row's time in UTC, to the second (the server's clock, the same for every reader)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _reader() -> activity.Reader:
    user = current_user()
    admin = user.role == "admin"
    allowed = None if admin else registry().allowed(user.id)
    return activity.Reader(user.username, admin, frozenset(allowed) if allowed is not None else None)


def _filters() -> activity.Filters:
    def arg(name: str) -> str:
        return request.args.get(name, "").strip()[:200]

    return activity.Filters(arg("stack"), arg("service"), arg("user"), arg("action"), arg("result"))


@bp.get("/")
@require_role("viewer")
def index():
    filters = _filters()
    raw = request.args.get("page", "1")
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else 1
    page = activity.read(store(), _reader(), filters, number)
    if has_role("operator"):  # run output can quote .env values: operators only, like the panel
        activity.link_runs(page.rows, runners().runs())
    known = {e.slug for e in registry().all()}
    return render_template(
        "activity/page.html", page=page, filters=filters, results=activity.RESULTS, known_stacks=known
    )
