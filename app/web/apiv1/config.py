"""Configuration for admins over the API: the stack's .env variables (secrets masked unless asked
for), and a change of values through the editor's own save (app.stack.envsave via
app.web.config.commit): same validation, backup, conflict check and affected services. The
version is the ETag; a PATCH must send it back in If-Match (428 without, 409 when it moved)."""

from __future__ import annotations

from flask import jsonify
from flask import request

from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import envsave
from app.stack.envfile import check_key
from app.web import config as config_views
from app.web.apiv1 import actor
from app.web.apiv1 import bp
from app.web.apiv1 import problem
from app.web.context import store
from app.web.security import require_role

MASK = "********"


def _editor() -> config_views.Editor:
    ed = config_views.editor()
    if ed is None:
        raise NotFound("No such stack.")
    return ed


def _variables(ed: config_views.Editor, reveal: bool) -> list[dict]:
    secret = ed.secret_keys()
    out = []
    for key in ed.all_keys():
        value = ed.doc.get(key)
        hidden = key in secret and not reveal and value not in (None, "")
        out.append(
            {
                "key": key,
                "value": MASK if hidden else value,
                "set": value is not None,
                "secret": key in secret,
                "masked": hidden,
            }
        )
    return out


@bp.get("/stacks/<stack>/config")
@require_role("admin")
def config_get():
    ed = _editor()
    reveal = request.args.get("reveal") in ("1", "true")
    if reveal:
        store().audit(actor(), "config.reveal", ed.env_path.name)
    response = jsonify(
        {
            "exists": ed.doc.exists,
            "version": ed.doc.version,
            "file": ed.env_path.name,
            "variables": _variables(ed, reveal),
        }
    )
    response.headers["ETag"] = f'"{ed.doc.version}"'
    return response


@bp.patch("/stacks/<stack>/config")
@require_role("admin")
def config_patch():
    ed = _editor()
    version = request.headers.get("If-Match", "").strip().strip('"')
    if not version:
        return problem(
            428,
            "Precondition required",
            "Send the version from GET .../config (its ETag) in If-Match, "
            "so a change made meanwhile is not overwritten.",
        )
    body = request.get_json(silent=True)
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(values, dict) or not values:
        raise InvalidInput('Send {"values": {"KEY": "value" or null to remove}}.')
    for key, value in values.items():
        check_key(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{key}: a string, or null to remove it.")
    new_bytes = envsave.apply_values(ed.doc, values)
    try:
        out = config_views.commit(
            ed, new_bytes, version, confirm_db=bool(body.get("confirm_database")), action="config.save"
        )
    except StackpilotError:
        store().audit(actor(), "api.config.save", ", ".join(values), "refused")
        raise
    result = {
        "saved": out.saved,
        "unchanged": out.unchanged,
        "changed": out.changed,
        "warnings": [{"key": k, "message": m} for k, m in out.warnings],
        "backup": out.backup,
        "affected_services": out.affected,
        "affected_error": out.affected_error or None,
    }
    if out.refusals:
        store().audit(actor(), "api.config.save", ", ".join(values), "refused: invalid")
        return problem(
            422,
            "Check the values",
            "Nothing was saved: a value would break the stack.",
            "invalid-input",
            refusals=[{"key": k, "message": m} for k, m in out.refusals],
        )
    if out.confirm:
        return problem(
            409,
            "Database data exists",
            "Changing a database password does not change it inside an "
            'existing database; send "confirm_database": true to save anyway.',
            "database-data",
            confirm=out.confirm,
        )
    store().audit(actor(), "api.config.save", ", ".join(out.changed) or "(no change)")
    fresh = config_views.editor()
    result["version"] = fresh.doc.version if fresh else None
    response = jsonify(result)
    if fresh:
        response.headers["ETag"] = f'"{fresh.doc.version}"'
    return response
