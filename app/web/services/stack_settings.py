"""Stack settings (project name, ordered compose files, active profiles), for admins.

The same files and profiles model as the setup wizard's Stack step (app.wizard.steps): every
compose file of the folder ticked in order, profiles as a multi-choice with what each adds. A new
setting is tried with `docker compose config` before it is saved, so a typo never leaves the table
without a model; the wizard's choice follows it (a later Retry never puts back older files), and
profiles are written back to COMPOSE_PROFILES when the .env carries that line.
"""

from __future__ import annotations

from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import backups
from app.stack import default_files
from app.stack.model import forget
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import settings
from app.web.context import settings_key
from app.web.context import store
from app.web.security import require_role
from app.web.services import bp
from app.wizard import state as wizard_state
from app.wizard import steps


def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured (STACKPILOT_STACK_DIR is not set).")
    return stack


def _form(stack, *, error: str = "", detail: str = "", values: dict | None = None, status: int = 200):
    chosen_files = list(values["files"]) if values else list(stack.files)
    profiles = list(values["profiles"]) if values else (list(stack.profiles) or steps.env_profiles(stack.directory))
    project = values["project"] if values else stack.project
    choice = steps.profile_choice(runners(), stack.with_changes(files=tuple(chosen_files) or stack.files), None)
    known = {o.name for o in choice.options}
    return render_template(
        "services/settings.html",
        stack=stack,
        project=project,
        chosen=profiles,
        profiles=choice,
        unavailable={},
        files=steps.file_rows(stack.directory, chosen_files, default_files(stack.directory)),
        other_profiles=", ".join(p for p in profiles if p not in known),
        error=error,
        detail=detail,
    ), status


@bp.get("/stack/settings")
@require_role("admin")
def settings_page():
    return _form(_stack())


@bp.post("/stack/settings")
@require_role("admin")
def save_settings():
    stack = _stack()
    form = request.form
    values = {
        "project": form.get("project", "").strip(),
        "files": form.getlist("file"),
        "profiles": [
            *form.getlist("profile"),
            *[v for k, v in form.items() if k.startswith("group_") and v],
            *[p.strip() for p in form.get("other_profiles", "").split(",") if p.strip()],
        ],
    }
    try:
        ticked = steps.parse_files(form, stack.directory)  # profiles are judged against these files
        choice = steps.profile_choice(runners(), stack.with_changes(files=tuple(ticked) or stack.files), None)
        clean = steps.parse_settings(form, stack, choice)
        candidate = stack.with_changes(
            project=clean["project"], files=tuple(clean["files"]) or stack.files, profiles=tuple(clean["profiles"])
        )
        runners().for_stack(candidate).config_json()
        written = steps.profiles_written_back(stack.directory, clean["profiles"])
        if written is not None:
            backups.save_env(stack.env_path, written[0], based_on=written[1], keep=settings().backups_keep)
    except StackpilotError as e:
        store().audit(g.user.username, "stack.settings", stack.project, "refused", e.message)
        return _form(stack, error=e.message, detail=e.detail, values=values, status=422)
    key = settings_key()
    store().set_setting(key, clean)
    wizard_state.settings_changed(store(), clean, wizard_state.key_for(key))
    forget(stack)
    files_text = ", ".join(clean["files"]) or "default"
    profiles_text = ", ".join(clean["profiles"]) or "none"
    store().audit(
        g.user.username,
        "stack.settings",
        clean["project"],
        "ok",
        f"files: {files_text}; profiles: {profiles_text}"
        + ("; COMPOSE_PROFILES written to .env" if written is not None else ""),
    )
    return redirect(url_for("services.index"), 303)
