"""The .env editor (/config): fields from .env.example, secrets, raw mode, backups and restore.

Views stay thin: read the document and the schema, apply the form, hand bytes to the one safe
save (app.stack.backups.save_env). Admin only; audited by key names, never values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint
from flask import g
from flask import render_template
from flask import request

from app.errors import EnvConflict
from app.errors import InvalidInput
from app.errors import StackpilotError
from app.stack import Stack
from app.stack import backups
from app.stack import recipes
from app.stack import schema as schema_mod
from app.stack.envfile import EnvDocument
from app.stack.envfile import check_key
from app.web import current_stack
from app.web import engine
from app.web import settings
from app.web import store
from app.web.config import impact
from app.web.security import require_role

log = logging.getLogger(__name__)

bp = Blueprint("config", __name__, url_prefix="/config")
FIELD_PREFIX = "v."


@dataclass
class Editor:
    """Everything a config view needs about the stack's .env, read fresh per request."""

    stack: Stack
    recipe: recipes.Recipe | None
    doc: EnvDocument
    schema: schema_mod.Schema
    example_path: Path

    @property
    def env_path(self) -> Path:
        return self.stack.env_path

    @property
    def copies(self) -> tuple[str, ...]:
        return self.recipe.env_copies if self.recipe else ()

    @property
    def notes(self) -> dict[str, str]:
        return self.recipe.notes if self.recipe else {}

    def secret_keys(self) -> set[str]:
        keys = set(self.doc.keys()) | set(self.schema.variables)
        return {k for k in keys if self.schema.kind(k).secret}

    def all_keys(self) -> list[str]:
        return list(dict.fromkeys(list(self.schema.variables) + self.doc.keys()))


def _recipe(stack: Stack) -> recipes.Recipe | None:
    saved = store().get_setting("stack") or {}
    name = saved.get("recipe") if isinstance(saved, dict) else None
    if name:
        try:
            return recipes.load(name)
        except KeyError:
            log.warning("the stack names an unknown recipe %r", name)
    return recipes.detect(stack.directory)


def editor() -> Editor | None:
    stack = current_stack()
    if stack is None:
        return None
    recipe = _recipe(stack)
    example = stack.directory / ".env.example"
    try:
        example_text = example.read_bytes()
    except OSError:
        example_text = b""
    overrides = recipe.kinds if recipe else None
    return Editor(stack, recipe, EnvDocument.load(stack.env_path),
                  schema_mod.parse_example(example_text, overrides), example)


def _require_editor() -> Editor:
    ed = editor()
    if ed is None:
        raise InvalidInput("No stack folder is configured: set STACKPILOT_STACK_DIR.")
    return ed


# -- form handling ---------------------------------------------------------------------------------
def form_values(ed: Editor) -> dict[str, str | None]:
    """The submitted values: a key absent from .env and left empty stays absent (None)."""
    out: dict[str, str | None] = {}
    for name, value in request.form.items():
        if not name.startswith(FIELD_PREFIX):
            continue
        key = name[len(FIELD_PREFIX):]
        check_key(key)
        value = value.replace("\r\n", "\n") if "\n" in value else value
        out[key] = None if value == "" and ed.doc.entry(key) is None else value
    return out


def apply_values(doc: EnvDocument, values: dict[str, str | None]) -> list[str]:
    """Set every submitted value that differs; returns the keys changed."""
    changed = []
    for key, value in values.items():
        if value is None:
            continue
        if doc.set(key, value):
            changed.append(key)
    return changed


def render_form(ed: Editor, values: dict[str, str | None] | None = None, *, status: int = 200,
                banners: list[tuple[str, str]] | None = None, generated: set[str] | None = None,
                version: str | None = None, result: dict | None = None, confirm: dict | None = None,
                resign: dict | None = None):
    sections = schema_mod.describe(ed.doc, ed.schema, values, ed.notes)
    return render_template(
        "config/_form.html", **form_context(ed, sections, banners=banners or [], generated=generated or set(),
                                            version=version or ed.doc.version, result=result,
                                            confirm=confirm, resign=resign),
    ), status


def form_context(ed: Editor, sections, **extra) -> dict:
    ctx = {"ed": ed, "sections": sections, "counts": _counts(sections), "banners": [], "generated": set(),
           "version": ed.doc.version, "result": None, "confirm": None, "resign": None}
    ctx.update(extra)
    return ctx


def _counts(sections) -> dict[str, int]:
    counts = {"error": 0, "warn": 0, "ok": 0}
    for _, fields in sections:
        for f in fields:
            counts[f.level] += 1
    return counts


def _field_of(ed: Editor, key: str, values: dict[str, str | None], generated: set[str] | None = None):
    for _, fields in schema_mod.describe(ed.doc, ed.schema, values, ed.notes):
        for f in fields:
            if f.key == key:
                return render_template("config/_field.html", f=f, generated=generated or set())
    raise InvalidInput(f"{key} is not a variable of this stack.")


def _audit(action: str, target: str, result: str = "ok", detail: str = "") -> None:
    store().audit(g.user.username, action, target[:500], result, detail)


# -- the safe save shared by the form, raw mode and restore -----------------------------------------
def commit(ed: Editor, new_bytes: bytes, based_on: str, *, confirm_db: bool, action: str) -> dict:
    """Validate-free part of a save: database warning, backup + atomic write, affected services.

    Returns {"saved": bool, "changed": [...], "affected": [...] | None, "affected_error": str,
    "confirm": {...} | None, "backup": name | None, "copies": [...]}."""
    old_bytes = ed.doc.original if ed.doc.exists else b""
    changed = list(backups.changed_keys(old_bytes, new_bytes))
    out = {"saved": False, "changed": changed, "affected": None, "affected_error": "", "confirm": None,
           "backup": None, "copies": []}
    before = None
    try:
        before = impact.config_for(ed.stack) if ed.doc.exists else None
    except StackpilotError as e:
        out["affected_error"] = e.message
    db_keys = [k for k in changed if ed.schema.kind(k).database and (ed.doc.get(k) or "")]
    if db_keys and not confirm_db and before is not None:
        try:
            draft = impact.config_for(ed.stack, new_bytes)
            touched = impact.affected_services(before, draft)
            data = impact.services_with_data(engine(), before, touched)
        except StackpilotError as e:
            data = {"(unknown)": [e.message]}
        if data:
            out["confirm"] = {"keys": db_keys, "data": data}
            _audit(action, ", ".join(changed), "held: database data exists")
            return out
    try:
        result = backups.save_env(ed.env_path, new_bytes, based_on, settings().backups_keep,
                                  ed.copies, ed.secret_keys())
    except EnvConflict:
        _audit(action, ", ".join(changed), "refused: changed meanwhile")
        raise
    out.update(saved=True, backup=result.backup.name if result.backup else None, copies=list(result.copies))
    if before is not None and result.changed_keys:
        try:
            out["affected"] = impact.affected_services(before, impact.config_for(ed.stack))
        except StackpilotError as e:
            out["affected_error"] = e.message
    _audit(action, ", ".join(result.changed_keys) or "(no change)", "ok",
           f"backup {out['backup']}" if out["backup"] else "")
    return out


def _blocking(sections) -> list[str]:
    return [f.key for _, fields in sections for f in fields if f.level == "error" and f.value]


# -- views -------------------------------------------------------------------------------------------
@bp.get("/")
@require_role("admin")
def index():
    ed = editor()
    if ed is None or not ed.doc.exists:
        return render_template("config/page.html", ed=ed, missing=True)
    sections = schema_mod.describe(ed.doc, ed.schema, None, ed.notes)
    return render_template("config/page.html", missing=False, **form_context(ed, sections))


@bp.post("/create")
@require_role("admin")
def create():
    """Create .env from .env.example (or empty), only when there is none yet."""
    ed = _require_editor()
    if ed.doc.exists:
        raise EnvConflict("There is already a .env file; reload the page.")
    try:
        data = ed.example_path.read_bytes()
    except OSError:
        data = b""
    commit(ed, data, "absent", confirm_db=True, action="config.create")
    return "", 200, {"HX-Redirect": "/config/"}


@bp.post("/save")
@require_role("admin")
def save():
    ed = _require_editor()
    values = form_values(ed)
    version = request.form.get("version", "")
    sections = schema_mod.describe(ed.doc, ed.schema, values, ed.notes)
    bad = _blocking(sections)
    if bad:
        _audit("config.save", ", ".join(bad), "refused: invalid")
        return render_form(ed, values, status=422, version=version, banners=[(
            "error", f"Nothing was saved: fix {len(bad)} value(s) marked in red ({', '.join(bad)}).")])
    doc = EnvDocument.parse(ed.doc.original) if ed.doc.exists else EnvDocument(exists=False)
    apply_values(doc, values)
    new_bytes = doc.to_bytes()
    if ed.doc.exists and new_bytes == ed.doc.original and version == ed.doc.version:
        return render_form(ed, banners=[("info", "Nothing changed, so nothing was saved.")])
    out = commit(ed, new_bytes, version, confirm_db=request.form.get("confirm_db") == "1",
                 action="config.save")
    if out["confirm"]:
        return render_form(ed, values, version=version, confirm=out["confirm"])
    fresh = _require_editor()
    return render_form(fresh, result=out)


@bp.post("/check/<key>")
@require_role("admin")
def check(key: str):
    """Re-validate one field in the context of the whole form (JWT signer, must-differ pairs)."""
    check_key(key)
    ed = _require_editor()
    return _field_of(ed, key, form_values(ed))


@bp.post("/generate/<key>")
@require_role("admin")
def generate(key: str):
    """A fresh value for one field (not saved until Save). A new signing secret re-renders the
    whole form so the JWTs signed by it show as needing a re-sign, with the offer to do it."""
    check_key(key)
    ed = _require_editor()
    values = form_values(ed)
    kind = ed.schema.kind(key)
    current = {k: v for k, v in values.items() if v is not None}
    values[key] = schema_mod.generate(key, kind, current)
    signed = [k for k in ed.all_keys() if ed.schema.kind(k).name == "jwt" and ed.schema.kind(k).signed_by == key]
    if signed:
        html, status = render_form(ed, values, version=request.form.get("version", ""), generated={key},
                                   resign={"signer": key, "keys": signed})
        return html, status, {"HX-Retarget": "#config-form", "HX-Reswap": "outerHTML"}
    return _field_of(ed, key, values, {key})


@bp.post("/generate-missing")
@require_role("admin")
def generate_missing():
    """Fill every secret that is empty or still the example's placeholder; real values stay."""
    ed = _require_editor()
    values = form_values(ed)
    plain = {k: v for k, v in values.items() if v is not None}
    fields = [f for _, fs in schema_mod.describe(ed.doc, ed.schema, values, ed.notes) for f in fs]
    filled = schema_mod.fill_missing(fields, plain)
    for k in filled:
        values[k] = plain[k]
    message = (f"Generated {len(filled)} value(s): {', '.join(filled)}. Review, then Save."
               if filled else "Every secret already has a real value; nothing was generated.")
    return render_form(ed, values, version=request.form.get("version", ""), generated=set(filled),
                       banners=[("info" if filled else "ok", message)])


@bp.post("/resign/<signer>")
@require_role("admin")
def resign(signer: str):
    """Re-sign every JWT signed by `signer` with its value in the form."""
    check_key(signer)
    ed = _require_editor()
    values = form_values(ed)
    plain = {k: v for k, v in values.items() if v is not None}
    done = []
    for key in ed.all_keys():
        kind = ed.schema.kind(key)
        if kind.name == "jwt" and kind.signed_by == signer:
            values[key] = schema_mod.generate(key, kind, plain)
            done.append(key)
    return render_form(ed, values, version=request.form.get("version", ""), generated=set(done),
                       banners=[("info", f"Re-signed {', '.join(done)} with the new {signer}. Review, then Save.")])


from app.web.config import backups_views  # noqa: E402,F401  (registers the backup routes)
from app.web.config import raw  # noqa: E402,F401  (registers the raw editor routes)
