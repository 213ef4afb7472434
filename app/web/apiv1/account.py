"""The token section of the account page: make a token (shown once), see them, revoke one."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from flask import Blueprint
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app import tokens
from app.errors import InvalidInput
from app.web.context import store
from app.web.security import ROLES
from app.web.security import require_role

bp = Blueprint("apitokens", __name__)
EXPIRY_CHOICES = (("", "Never"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"))


@bp.app_context_processor
def _tokens_context() -> dict:
    def my_tokens() -> list[tokens.Token]:
        user = g.get("user")
        return tokens.of_user(store(), user.id) if user is not None else []

    roles = [r for r in ROLES if g.get("user") is not None and ROLES[r] <= ROLES.get(g.user.role, 0)]
    return {"api_tokens": my_tokens, "token_roles": roles, "token_expiry_choices": EXPIRY_CHOICES}


@bp.post("/account/tokens")
@require_role("viewer")  # anyone signed in, for themselves
def create():
    form = request.form
    days = form.get("days", "")
    try:
        plain, token = tokens.create(
            store(),
            current_app.secret_key,
            g.user,
            form.get("name", ""),
            form.get("role", "viewer"),
            int(days) if days.isdigit() else None,
        )
    except InvalidInput as e:
        return render_template("auth/account.html", error=None, done=False, token_error=e.message), 422
    store().audit(g.user.username, "token.create", token.name, detail=f"role {token.role}")
    return render_template("auth/account.html", error=None, done=False, new_token=plain, new_token_name=token.name)


@bp.post("/account/tokens/<int:token_id>/revoke")
@require_role("viewer")
def revoke(token_id: int):
    token = tokens.revoke(store(), g.user.id, token_id)
    store().audit(g.user.username, "token.revoke", token.name)
    return redirect(url_for("auth.account") + "#tokens", 303)


@bp.app_template_filter("token_time")
def token_time(ts: float) -> str:
    """A token's time in UTC, to the minute."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
