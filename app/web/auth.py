"""Sign-in, sign-out, the own account (password), and user administration.

Accounts live in the store; the rules (rate limits, last admin, setup token) live in
app/accounts.py. Every user change is admin-only and audited.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for

from app import accounts
from app import passwords
from app.errors import InvalidInput
from app.errors import RateLimited
from app.web.context import registry
from app.web.context import store
from app.web.security import client_address
from app.web.security import login_user
from app.web.security import logout_user
from app.web.security import public
from app.web.security import require_role

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


def access() -> accounts.Access:
    return current_app.extensions["stackpilot.access"]


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        # The default stack opens first; without one, the home page (every stack) does.
        return url_for("services.index") if registry().default() is not None else url_for("home.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if store().count_users("admin") == 0:
        return redirect(url_for("setup.index"))
    if g.get("user") is not None and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")))
    error = None
    status = 200
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:64]
        password = request.form.get("password", "")
        client = client_address()
        user = store().user_by_name(username)
        try:
            # Unknown names are checked against a dummy hash: the same time, the same throttle.
            ok = accounts.check_password(
                access().throttle, client, username, password, user.password_hash if user else passwords.DUMMY_HASH
            )
        except RateLimited as e:
            store().audit(username or "?", "login", result="throttled", detail=f"from {client}")
            return (
                render_template("auth/login.html", error=e.message, username=username),
                429,
                {"Retry-After": str(getattr(e, "retry_after", 5))},
            )
        if user and ok:
            login_user(user)
            store().audit(user.username, "login", detail=f"from {client}")
            return redirect(_safe_next(request.args.get("next")))
        error, status = "Wrong username or password.", 422
        store().audit(username or "?", "login", result="failed", detail=f"from {client}")
    return render_template("auth/login.html", error=error, username=username), status


@bp.post("/logout")
@require_role("viewer")
def logout():
    store().audit(g.user.username, "logout")
    logout_user()
    return redirect(url_for("auth.login"))


# -- the own account -----------------------------------------------------------------------------
@bp.get("/account")
@require_role("viewer")
def account():
    return render_template("auth/account.html", error=None, done=False)


@bp.post("/account/password")
@require_role("viewer")
def change_password():
    form = request.form
    try:
        accounts.change_password(
            store(),
            access().throttle,
            client_address(),
            g.user,
            form.get("current", ""),
            form.get("new", ""),
            form.get("confirm", ""),
        )
    except RateLimited as e:
        store().audit(g.user.username, "password.change", g.user.username, result="throttled")
        return render_template("auth/account.html", error=e.message, done=False), 429
    except InvalidInput as e:
        store().audit(g.user.username, "password.change", g.user.username, result="refused")
        return render_template("auth/account.html", error=e.message, done=False), 422
    ended = 0
    if form.get("logout_others"):
        ended = store().delete_other_sessions(g.user.id, keep=session.get("sid"))
    store().audit(g.user.username, "password.change", g.user.username, detail=f"other sessions ended: {ended}")
    return render_template("auth/account.html", error=None, done=True, ended=ended)


# -- user administration ----------------------------------------------------------------------
def _users_page(status: int = 200, error: str | None = None, added: str | None = None, notice: str = ""):
    template = "auth/_users.html" if request.headers.get("HX-Target") == "users" else "auth/users.html"
    return render_template(
        template, users=store().users(), roles=accounts.ROLES, error=error, added=added, notice=notice
    ), status


@bp.get("/users")
@require_role("admin")
def users():
    return _users_page()


@bp.post("/users")
@require_role("admin")
def add_user():
    form = request.form
    username = form.get("username", "").strip()
    try:
        user = accounts.add_user(store(), username, form.get("password", ""), form.get("role", ""))
    except InvalidInput as e:
        store().audit(g.user.username, "user.add", username[:64], result="refused")
        return _users_page(422, error=e.message)
    store().audit(g.user.username, "user.add", user.username, detail=f"role {user.role}")
    return _users_page(added=user.username)


@bp.post("/users/<int:user_id>/role")
@require_role("admin")
def set_role(user_id: int):
    role = request.form.get("role", "")
    user = accounts.change_role(store(), user_id, role)
    store().audit(g.user.username, "user.role", user.username, detail=f"role {role}")
    return _users_page()


@bp.post("/users/<int:user_id>/password")
@require_role("admin")
def reset_password(user_id: int):
    """Set a new password for a user (who lost theirs); all their sessions end."""
    try:
        user = accounts.reset_password(store(), user_id, request.form.get("password", ""))
    except InvalidInput as e:
        return _users_page(422, error=e.message)
    store().audit(g.user.username, "user.password", user.username)
    if user.id == g.user.id:
        logout_user()
        return "", 200, {"HX-Redirect": url_for("auth.login")}
    return _users_page(notice=f"New password set for {user.username}; their sessions were ended.")


@bp.post("/users/<int:user_id>/remove")
@require_role("admin")
def remove_user(user_id: int):
    user = accounts.remove_user(store(), user_id)
    store().audit(g.user.username, "user.remove", user.username)
    if user.id == g.user.id:
        logout_user()
        return "", 200, {"HX-Redirect": url_for("auth.login")}
    return _users_page()


def init_app(app: Flask) -> None:
    """Start-up: create the admin from the password file, or print a fresh setup token."""
    settings = app.config["SETTINGS"]
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "<this-machine>"
    link_base = f"http://{host}:{settings.port}"
    if settings.hostnames:  # behind the stack's Caddy: the HTTPS name, not the unpublished port (issue 13)
        link_base = f"https://{settings.hostnames[0]}"
    passwords.configure(settings.password_memory_mib)
    token = accounts.start_up(
        app.extensions["stackpilot.store"],
        settings.data_dir,
        settings.admin_user,
        settings.admin_password_file,
        link_base,
    )
    app.extensions["stackpilot.access"] = accounts.Access(token=token, throttle=token.throttle)
