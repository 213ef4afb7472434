"""Engines: the admin's page to add Docker engines (tcp+TLS, ssh), check what works, and remove them.

Thin views: the engine package checks input, keeps certificates and keys, and runs the check.
The page never calls an engine while rendering: each card asks for its own status after load,
so a dead engine costs its own card, never the page.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import render_template
from flask import request

from app.engine import Engine
from app.engine.check import Finding
from app.engine.check import check
from app.engine.registry import EngineRegistry
from app.engine.registry import NewEngine
from app.engine.registry import add_engine
from app.engine.registry import load_saved
from app.engine.registry import remove_engine
from app.engine.remote import SSHUnavailable
from app.engine.remote import own_ssh_key
from app.errors import InvalidInput
from app.errors import StackpilotError
from app.web.security import require_role

bp = Blueprint("engines", __name__, url_prefix="/engines")

FORM_FIELDS = ("name", "url", "ca", "cert", "key", "cert_folder", "ssh_key")


def _registry() -> EngineRegistry:
    return current_app.extensions["stackpilot.engines"]


def _data_dir():
    return current_app.config["SETTINGS"].data_dir


def _audit(action: str, target: str, result: str = "ok", detail: str = "") -> None:
    current_app.extensions["stackpilot.store"].audit(g.user.username, action, target, result, detail)


def _compose_probe_args(engine: Engine) -> tuple[list[str], dict[str, str] | None]:
    """The Compose command and the exact environment a stack's runner uses on this engine."""
    runners = current_app.extensions["stackpilot.runners"]
    try:
        return runners.compose_command(), runners.env(engine.id)
    except StackpilotError:
        return [], None


def _page(
    status: int = 200,
    form: dict | None = None,
    error: InvalidInput | None = None,
    checked: tuple[str, list[Finding]] | None = None,
):
    try:
        _, public_key = own_ssh_key(_data_dir())
    except SSHUnavailable as e:
        public_key = ""
        ssh_missing = e.message
    else:
        ssh_missing = ""
    template = "engines/_body.html" if request.headers.get("HX-Target") == "engines" else "engines/page.html"
    return render_template(
        template,
        engines=_registry().all(),
        form=form or {},
        error=error,
        checked=checked,
        public_key=public_key,
        ssh_missing=ssh_missing,
        stacks=_stacks_by_engine(),
    ), status


def _stacks_by_engine() -> dict[str, list[str]]:
    """Which stacks each engine carries, so removing one says what it leaves without an engine."""
    registry = current_app.extensions.get("stackpilot.stacks")
    out: dict[str, list[str]] = {}
    for entry in registry.all() if registry is not None else ():
        out.setdefault(entry.engine or "local", []).append(entry.slug)
    return out


@bp.get("/")
@require_role("admin")
def index():
    return _page()


@bp.post("/")
@require_role("admin")
def add():
    form = {k: request.form.get(k, "") for k in FORM_FIELDS}
    for upload in ("ca", "cert", "key", "ssh_key"):
        f = request.files.get(f"{upload}_file")
        if f and f.filename:
            form[upload] = f.read(64 * 1024).decode("utf-8", errors="replace")
    try:
        engine = add_engine(_registry(), current_app.extensions["stackpilot.store"], _data_dir(), NewEngine(**form))
    except InvalidInput as e:
        _audit("engine.add", form["name"][:60], "refused", e.message)
        return _page(422, form=form, error=e)
    _audit("engine.add", engine.id, detail=engine.endpoint)
    command, env = _compose_probe_args(engine)
    return _page(checked=(engine.id, check(engine, command, env)))


@bp.get("/<engine_id>/status")
@require_role("admin")
def status(engine_id: str):
    """One ping, for a card's badge; fails fast on a dead engine (its own backoff)."""
    engine = _registry().get(engine_id)
    ok, text = engine.status()
    if not ok and engine.state().reason:
        text = engine.state().reason  # without the "<name>: … next try in" wrapper of a backing-off engine
    return render_template("engines/_status.html", engine=engine, ok=ok, text=text)


@bp.post("/<engine_id>/check")
@require_role("admin")
def run_check(engine_id: str):
    engine = _registry().get(engine_id)
    command, env = _compose_probe_args(engine)
    findings = check(engine, command, env)
    _audit("engine.check", engine.id, "ok" if all(f.ok is not False for f in findings) else "failed")
    return render_template("engines/_check.html", engine=engine, findings=findings)


@bp.post("/<engine_id>/remove")
@require_role("admin")
def remove(engine_id: str):
    remove_engine(_registry(), current_app.extensions["stackpilot.store"], _data_dir(), engine_id)
    _audit("engine.remove", engine_id)
    return _page()


def init_app(app: Flask) -> None:
    """Start-up: the engines an admin added, into the registry (no network: clients open lazily)."""
    load_saved(
        app.extensions["stackpilot.engines"], app.extensions["stackpilot.store"], app.config["SETTINGS"].data_dir
    )
