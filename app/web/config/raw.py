"""Raw-text mode of the .env editor: the whole file in a textarea, with the same validation and
the same safe save as the form."""

from __future__ import annotations

from flask import render_template
from flask import request

from app.stack import envsave
from app.stack import schema as schema_mod
from app.stack.envfile import BOM
from app.stack.envfile import EnvDocument
from app.web.config import _require_editor
from app.web.config import bp
from app.web.config import commit
from app.web.security import require_role


def submitted_bytes(doc: EnvDocument, text: str) -> bytes:
    """Browsers send textarea lines as CRLF: unchanged lines keep their own endings, BOM kept."""
    if text.startswith(BOM):
        text = text[1:]
    if not doc.exists:
        return text.replace("\r\n", "\n").encode("utf-8", "surrogateescape")
    return envsave.raw_bytes(doc.original, text, bom=doc.bom)


def raw_findings(ed, doc: EnvDocument) -> list[tuple[str, str, str]]:
    """(level, key or line, message) for the whole text: Compose problems first, then kinds."""
    out = [("error", f"line {line}", msg) for line, msg in doc.problems()]
    for _, fields in schema_mod.describe(doc, ed.schema, None, ed.notes):
        for f in fields:
            for finding in f.findings:
                if f.value is not None or finding.level == "error":
                    out.append((finding.level, f.key, finding.message))
    return out


def render_raw(ed, text: str, version: str, findings=None, status: int = 200, result=None, confirm=None):
    return render_template(
        "config/_raw_form.html",
        ed=ed,
        text=text,
        version=version,
        findings=findings or [],
        result=result,
        confirm=confirm,
    ), status


@bp.get("/raw")
@require_role("admin")
def raw_page():
    ed = _require_editor()
    text = ed.doc.text().lstrip(BOM)
    return render_template(
        "config/raw.html",
        ed=ed,
        text=text,
        version=ed.doc.version,
        findings=raw_findings(ed, ed.doc),
        result=None,
        confirm=None,
    )


@bp.post("/raw")
@require_role("admin")
def raw_save():
    ed = _require_editor()
    version = request.form.get("version", "")
    text = request.form.get("text", "")
    data = submitted_bytes(ed.doc, text)
    if data == ed.doc.original and version == ed.doc.version:
        return render_raw(
            ed, text, version, raw_findings(ed, EnvDocument.parse(data)), result=envsave.SaveOutcome(unchanged=True)
        )
    out = commit(ed, data, version, confirm_db=request.form.get("confirm_db") == "1", action="config.save_raw")
    if out.refusals:
        findings = [("error", k, m) for k, m in out.refusals] + [("warn", k, m) for k, m in out.warnings]
        return render_raw(ed, text, version, findings, status=422)
    if out.confirm:
        return render_raw(ed, text, version, raw_findings(ed, EnvDocument.parse(data)), confirm=out.confirm)
    fresh = _require_editor()
    return render_raw(
        fresh, fresh.doc.text().lstrip(BOM), fresh.doc.version, raw_findings(fresh, fresh.doc), result=out
    )
