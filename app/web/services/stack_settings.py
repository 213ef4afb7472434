"""Stack settings (project name, ordered compose files, active profiles), for admins.

A new setting is tried with `docker compose config` before it is saved, so a typo never leaves
the table without a model.
"""

from __future__ import annotations

from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app import compose
from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import stack_from
from app.stack import validate_settings
from app.stack.model import ComposeModel
from app.stack.model import forget
from app.stack.model import load_model
from app.web import current_stack
from app.web import store
from app.web.security import require_role
from app.web.services import bp


def _candidates(directory) -> list[str]:
    """Compose-looking files in the stack folder, to offer as a hint."""
    names = sorted(p.name for p in directory.iterdir()
                   if p.is_file() and p.suffix in (".yml", ".yaml") and not p.name.startswith("."))
    return names[:50]


def _form(stack, *, error: str = "", detail: str = "", values: dict | None = None, status: int = 200):
    model: ComposeModel | None = None
    try:
        model = load_model(stack)
    except StackpilotError:
        pass
    values = values or {"project": stack.project, "files": "\n".join(stack.files),
                        "profiles": list(stack.profiles)}
    known = sorted(set(model.profiles if model else ()) | set(values["profiles"]))
    return render_template("services/settings.html", stack=stack, values=values, known_profiles=known,
                           candidates=_candidates(stack.directory), error=error, detail=detail), status


@bp.get("/stack/settings")
@require_role("admin")
def settings_page():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured (STACKPILOT_STACK_DIR is not set).")
    return _form(stack)


@bp.post("/stack/settings")
@require_role("admin")
def save_settings():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured (STACKPILOT_STACK_DIR is not set).")
    project = request.form.get("project", "").strip()
    files = [line.strip() for line in request.form.get("files", "").splitlines() if line.strip()]
    profiles = [p for p in request.form.getlist("profile") if p]
    profiles += [p.strip() for p in request.form.get("other_profiles", "").split(",") if p.strip()]
    profiles = list(dict.fromkeys(profiles))
    values = {"project": project, "files": "\n".join(files), "profiles": profiles}
    try:
        clean = validate_settings(stack.directory, project, files, profiles)
        candidate = stack_from(stack.directory, clean)
        compose.config_json(candidate)
    except StackpilotError as e:
        store().audit(g.user.username, "stack.settings", stack.project, "refused", e.message)
        return _form(stack, error=e.message, detail=e.detail, values=values, status=422)
    store().set_setting("stack", clean)
    forget(stack)
    files_text = ", ".join(clean["files"]) or "default"
    profiles_text = ", ".join(clean["profiles"]) or "none"
    store().audit(g.user.username, "stack.settings", clean["project"], "ok",
                  f"files: {files_text}; profiles: {profiles_text}")
    return redirect(url_for("services.index"), 303)
