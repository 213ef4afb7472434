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
from app.stack import Stack
from app.stack import envsave
from app.stack import recipes
from app.stack import schema as schema_mod
from app.stack.envfile import EnvDocument
from app.stack.envfile import check_key
from app.web.config import impact
from app.web.context import current_stack
from app.web.context import settings
from app.web.context import stack_engine as engine
from app.web.context import stack_settings
from app.web.context import store
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
    saved = stack_settings()
    name = saved.get("recipe")
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
    doc = EnvDocument.load(stack.env_path)
    example = envsave.discover_example(stack.directory, getattr(recipe, "env_example", None))
    example_text = b""
    if example is not None:
        try:
            example_text = example.read_bytes()
        except OSError:
            example = None
    overrides = recipe.kinds if recipe else None
    parsed = envsave.build_schema(
        stack.directory, stack.files, stack.profiles, doc, example_text if example is not None else None, overrides
    )
    return Editor(stack, recipe, doc, parsed, example or stack.directory / ".env.example")


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
        key = name[len(FIELD_PREFIX) :]
        check_key(key)
        value = value.replace("\r\n", "\n") if "\n" in value else value
        out[key] = None if value == "" and ed.doc.entry(key) is None else value
    return out


def render_form(
    ed: Editor,
    values: dict[str, str | None] | None = None,
    *,
    status: int = 200,
    banners: list[tuple[str, str]] | None = None,
    generated: set[str] | None = None,
    version: str | None = None,
    result: dict | None = None,
    confirm: dict | None = None,
    resign: dict | None = None,
):
    sections = schema_mod.describe(ed.doc, ed.schema, values, ed.notes)
    return render_template(
        "config/_form.html",
        **form_context(
            ed,
            sections,
            banners=banners or [],
            generated=generated or set(),
            version=version or ed.doc.version,
            result=result,
            confirm=confirm,
            resign=resign,
        ),
    ), status


def form_context(ed: Editor, sections, **extra) -> dict:
    ctx = {
        "ed": ed,
        "sections": sections,
        "counts": _counts(sections),
        "banners": [],
        "generated": set(),
        "version": ed.doc.version,
        "result": None,
        "confirm": None,
        "resign": None,
    }
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


# -- the safe save shared by the form, raw mode, create and restore ---------------------------------------
def commit(
    ed: Editor, new_bytes: bytes, based_on: str, *, confirm_db: bool, action: str, validate: bool = True
) -> envsave.SaveOutcome:
    """The one domain save (app.stack.envsave.save) with this stack's Compose and engine; audited by
    key names, never values."""
    try:
        out = envsave.save(
            ed.env_path,
            ed.schema,
            new_bytes,
            based_on,
            keep=settings().backups_keep,
            copies=ed.copies,
            confirm_db=confirm_db,
            validate=validate,
            config=lambda env: impact.config_for(ed.stack, env),
            data=lambda config, services: impact.services_with_data(engine(), config, services),
        )
    except EnvConflict:
        _audit(action, "", "refused: changed meanwhile")
        raise
    if out.refusals:
        _audit(action, ", ".join(sorted({k for k, _ in out.refusals})), "refused: invalid")
    elif out.confirm:
        _audit(action, ", ".join(out.changed), "held: database data exists")
    elif out.saved:
        _audit(action, ", ".join(out.changed) or "(no change)", "ok", f"backup {out.backup}" if out.backup else "")
    return out


def refusal_banner(out: envsave.SaveOutcome) -> list[tuple[str, str]]:
    names = ", ".join(dict.fromkeys(k for k, _ in out.refusals))
    return [("error", f"Nothing was saved: {len(out.refusals)} value(s) would break the stack ({names}).")]


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
    commit(ed, data, "absent", confirm_db=True, action="config.create", validate=False)  # the stack's own file
    return "", 200, {"HX-Redirect": "/config/"}


@bp.post("/save")
@require_role("admin")
def save():
    ed = _require_editor()
    values = form_values(ed)
    version = request.form.get("version", "")
    new_bytes = envsave.apply_values(ed.doc, values)
    if ed.doc.exists and new_bytes == ed.doc.original and version == ed.doc.version:
        return render_form(ed, banners=[("info", "Nothing changed, so nothing was saved.")])
    out = commit(ed, new_bytes, version, confirm_db=request.form.get("confirm_db") == "1", action="config.save")
    if out.refusals:
        extra = [("error", f"{k}: {m}") for k, m in out.refusals if k in ("Compose",) or k.startswith("line ")]
        return render_form(ed, values, status=422, version=version, banners=refusal_banner(out) + extra)
    if out.confirm:
        return render_form(ed, values, version=version, confirm=out.confirm)
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
    """A fresh value for one field (not saved until Save). A new signing secret re-signs the JWTs
    signed by it at once (the wizard does the same), so the form never shows them broken."""
    check_key(key)
    ed = _require_editor()
    values = form_values(ed)
    kind = ed.schema.kind(key)
    current = {k: v for k, v in values.items() if v is not None}
    values[key] = current[key] = schema_mod.generate(key, kind, current)
    signed = schema_mod.signed_by(ed.schema, key, ed.doc.keys())
    if signed:
        resigned = schema_mod.resign(current, ed.schema, key)
        values.update(resigned)
        html, status = render_form(
            ed,
            values,
            version=request.form.get("version", ""),
            generated={key, *resigned},
            banners=[("info", f"Generated {key} and re-signed {', '.join(resigned)} with it. Review, then Save.")],
        )
        return html, status, {"HX-Retarget": "#config-form", "HX-Reswap": "outerHTML"}
    return _field_of(ed, key, values, {key})


@bp.post("/generate-missing")
@require_role("admin")
def generate_missing():
    """Fill every secret that is empty or a placeholder (app.stack.schema.fill_secrets, the policy
    the wizard uses too); real values stay."""
    ed = _require_editor()
    values = form_values(ed)
    plain = {k: v for k, v in values.items() if v is not None}
    base = {**ed.doc.values(), **plain}
    filled = schema_mod.fill_secrets(base, ed.schema)
    values.update(filled)
    message = (
        f"Generated {len(filled)} value(s): {', '.join(filled)}. Review, then Save."
        if filled
        else "Every secret already has a real value; nothing was generated."
    )
    return render_form(
        ed,
        values,
        version=request.form.get("version", ""),
        generated=set(filled),
        banners=[("info" if filled else "ok", message)],
    )


@bp.post("/resign/<signer>")
@require_role("admin")
def resign(signer: str):
    """Re-sign every JWT signed by `signer` with its value in the form."""
    check_key(signer)
    ed = _require_editor()
    values = form_values(ed)
    plain = {k: v for k, v in values.items() if v is not None}
    done = schema_mod.resign({**ed.doc.values(), **plain}, ed.schema, signer)
    values.update(done)
    return render_form(
        ed,
        values,
        version=request.form.get("version", ""),
        generated=set(done),
        banners=[("info", f"Re-signed {', '.join(done)} with the new {signer}. Review, then Save.")],
    )


from app.web.config import backups_views  # noqa: E402,F401  (registers the backup routes)
from app.web.config import raw  # noqa: E402,F401  (registers the raw editor routes)
