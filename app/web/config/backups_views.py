"""/config/backups: list, diff against the current file (secrets masked unless revealed),
restore (the current file is backed up first) and download."""

from __future__ import annotations

from flask import render_template
from flask import request
from flask import send_file

from app.stack import backups
from app.web.config import _audit
from app.web.config import _require_editor
from app.web.config import bp
from app.web.config import commit
from app.web.context import settings
from app.web.security import require_role


@bp.get("/backups")
@require_role("admin")
def backups_page():
    ed = _require_editor()
    return render_template(
        "config/backups.html",
        ed=ed,
        items=backups.list_backups(ed.stack.directory),
        version=ed.doc.version,
        keep=_keep(),
    )


def _keep() -> int:
    return settings().backups_keep


@bp.get("/backups/<name>/diff")
@require_role("admin")
def backup_diff(name: str):
    ed = _require_editor()
    item = backups.get_backup(ed.stack.directory, name)
    reveal = request.args.get("reveal") == "1"
    if reveal:
        _audit("config.backup_reveal", name)
    lines = backups.diff_lines(
        item.path.read_bytes(), ed.doc.original if ed.doc.exists else b"", None if reveal else ed.secret_keys()
    )
    return render_template("config/_backup_diff.html", item=item, lines=lines, reveal=reveal)


@bp.get("/backups/<name>/download")
@require_role("admin")
def backup_download(name: str):
    ed = _require_editor()
    item = backups.get_backup(ed.stack.directory, name)
    _audit("config.backup_download", name)
    return send_file(item.path, mimetype="text/plain", as_attachment=True, download_name=item.name)


@bp.post("/backups/<name>/restore")
@require_role("admin")
def backup_restore(name: str):
    ed = _require_editor()
    item = backups.get_backup(ed.stack.directory, name)
    out = commit(
        ed,
        item.path.read_bytes(),
        request.form.get("version", ""),
        confirm_db=request.form.get("confirm_db") == "1",
        action="config.restore",
    )
    fresh = _require_editor()
    status = 422 if out.refusals else 200
    return render_template(
        "config/_backups_body.html",
        ed=fresh,
        items=backups.list_backups(fresh.stack.directory),
        version=fresh.doc.version,
        keep=_keep(),
        restored=item if out.saved else None,
        pending=item if not out.saved else None,
        result=out,
    ), status
