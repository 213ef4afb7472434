"""Sign-in and sign-out. Accounts live in the store; passwords are scrypt hashes."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, Flask, redirect, render_template, request, url_for

from app import passwords
from app.web import store
from app.web.security import login_user, logout_user, public

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return url_for("services.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if store().count_users() == 0:
        return redirect(url_for("setup.index"))
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = store().user_by_name(username)
        ok = passwords.verify_password(password, user.password_hash if user else passwords.DUMMY_HASH)
        if user and ok:
            login_user(user)
            store().audit(user.username, "login")
            return redirect(_safe_next(request.args.get("next")))
        error = "Wrong username or password."
        store().audit(username[:64] or "?", "login", result="failed")
    return render_template("auth/login.html", error=error, username=username), (422 if error else 200)


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


def bootstrap_admin(app: Flask) -> None:
    """Create the admin from STACKPILOT_ADMIN_PASSWORD_FILE (automated installs), once."""
    settings = app.config["SETTINGS"]
    if settings.admin_password_file is None:
        return
    st = app.extensions["stackpilot.store"]
    if st.count_users("admin"):
        return
    password = settings.admin_password_file.read_text().strip()
    if problem := passwords.password_problem(password):
        log.error("STACKPILOT_ADMIN_PASSWORD_FILE refused: %s", problem)
        return
    if st.add_first_admin(settings.admin_user, passwords.hash_password(password)):
        log.info("admin %r created from STACKPILOT_ADMIN_PASSWORD_FILE", settings.admin_user)


def init_app(app: Flask) -> None:
    bootstrap_admin(app)
