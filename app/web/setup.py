"""First run: claim the admin account with the setup token, then the guided setup wizard."""

from __future__ import annotations

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.errors import StackpilotError
from app.web import store
from app.web.auth import access
from app.web.security import client_address
from app.web.security import login_user
from app.web.security import public_until_claimed
from app.web.security import require_role

bp = Blueprint("setup", __name__, url_prefix="/setup")


@bp.get("/")
@public_until_claimed
@require_role("admin")
def index():
    if store().count_users("admin") == 0:
        return render_template("setup/claim.html", error=None, username="admin")
    return render_template("setup/page.html")


@bp.post("/claim")
@public_until_claimed
@require_role("admin")
def claim():
    """Token + username + password make the first admin; the claimer is signed in at once."""
    form = request.form
    username = form.get("username", "").strip()[:64]
    client = client_address()
    try:
        user = access().token.claim(store(), client, form.get("token", ""), username,
                                    form.get("password", ""))
    except StackpilotError as e:
        store().audit(username or "?", "setup.claim", result="refused", detail=f"from {client}")
        if store().count_users("admin"):
            return redirect(url_for("auth.login"))
        return render_template("setup/claim.html", error=e.message, username=username), e.status
    login_user(user)
    store().audit(user.username, "setup.claim", detail=f"from {client}")
    return redirect(url_for("setup.index"))
