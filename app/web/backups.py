"""The Backups page of a stack: what each service keeps (volumes, bind folders, sizes), Back up now,
restores with a confirmation naming what is replaced, downloads, the backups folder and the schedule.

Admin only: an archive holds everything a service stored (and the .env backup holds its secrets).
Jobs run in threads of the app (app/backups/jobs.py); the page polls the list while one runs.
Downloads stream the file (never read into memory) with no-store (set for every answer by the
security layer).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import render_template
from flask import request
from flask import send_file

from app.backups import jobs as backup_jobs
from app.backups.mounts import consistency
from app.backups.schedule import Scheduler
from app.backups.schedule import parse_schedule
from app.backups.store import BackupStore
from app.engine import archives
from app.engine.self import own_service
from app.errors import Forbidden
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import StackpilotError
from app.web.context import current_entry
from app.web.context import current_stack
from app.web.context import settings
from app.web.context import stack_engine
from app.web.context import stack_runner
from app.web.context import store
from app.web.security import has_role
from app.web.security import require_role

log = logging.getLogger(__name__)
bp = Blueprint("backups", __name__, url_prefix="/backups")

JOBS = "stackpilot.backup_jobs"
SCHEDULER = "stackpilot.backup_scheduler"
SETTING = "backups"
SIZE_TTL = 60.0
_sizes: dict[str, tuple[float, dict[str, int]]] = {}


def init_app(app: Flask) -> None:
    app.extensions[JOBS] = backup_jobs.Jobs()
    scheduler = Scheduler(app)
    scheduler.runner = _scheduled(app)
    app.extensions[SCHEDULER] = scheduler
    app.jinja_env.globals["backup_failures"] = backup_failures  # called by services/_banner.html only
    if not app.config.get("TESTING"):
        scheduler.start()


def jobs() -> backup_jobs.Jobs:
    return current_app.extensions[JOBS]


def backups_root(the_store=None, the_settings=None) -> Path:
    """The backups folder: the setting, else <data dir>/backups."""
    raw = ((the_store or store()).get_setting(SETTING, {}) or {}).get("root", "")
    return Path(raw) if raw else (the_settings or settings()).data_dir / "backups"


def _key() -> str:
    entry = current_entry()
    stack = _stack()
    return entry.slug if entry is not None else stack.project


def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured yet, so there is no data to back up.")
    return stack


def backup_store() -> BackupStore:
    return BackupStore(backups_root(), _key())


def stack_data() -> backup_jobs.StackData:
    """What a backup job needs, read now from the request's stack (the job runs in its own thread)."""
    return data_for(current_entry(), _stack(), stack_engine(), stack_runner(), g.user.username)


def data_for(entry, stack, engine, runner, user: str) -> backup_jobs.StackData:
    config = runner.config_json()
    services = config.get("services") or {}

    def lock(title: str):
        return runner.lock(title, user)

    return backup_jobs.StackData(
        engine=engine,
        project=stack.project,
        key=entry.slug if entry is not None else stack.project,
        directory=Path(stack.directory),
        config=config,
        images={name: str(spec.get("image") or "") for name, spec in services.items()},
        labels={name: dict(spec.get("labels") or {}) for name, spec in services.items()},
        env_keep=settings().backups_keep,
        lock=lock,
        own=own_service(engine, stack.project, settings().self_container_id),
    )


def _scheduled(app: Flask):
    """The scheduler's runner: back up the whole stack `slug`, then keep the newest N."""

    def run(slug: str, schedule: dict) -> None:
        from app.web import context

        with app.app_context():
            entry = context.registry().get(slug)
            if entry is None:
                raise NotFound(f"the stack {slug} is no longer registered")
            stack = context.stack_of(entry)
            data = data_for(
                entry, stack, context.engines().get(entry.engine), context.runners().for_stack(stack), "schedule"
            )
            target = BackupStore(backups_root(), data.key)
            the_store = context.store()

        def work(job: backup_jobs.Job) -> None:
            manifest = backup_jobs.backup(data, target, sorted(data.config.get("services") or {}), "all", "schedule")
            job.result, job.state, job.text = manifest.id, manifest.status, manifest.error
            removed = target.prune(int(schedule.get("keep", 7)))
            detail = f"{manifest.id}; {manifest.size} bytes; {manifest.duration:.1f} s; removed {len(removed)} old"
            the_store.audit(
                "schedule", "backup.run", f"{data.key}: all", manifest.status, f"{detail}; {manifest.error}"[:500]
            )

        app.extensions[JOBS].start(data.key, "Scheduled backup", "schedule", work)

    return run


# -- sizes -----------------------------------------------------------------------------------------
def _volume_sizes() -> dict[str, int]:
    engine = stack_engine()
    cached = _sizes.get(engine.id)
    if cached and time.monotonic() - cached[0] < SIZE_TTL:
        return cached[1]
    try:
        sizes = archives.volume_sizes(engine)
    except StackpilotError as e:
        log.info("volume sizes unavailable: %s", e.message)
        sizes = {}
    _sizes[engine.id] = (time.monotonic(), sizes)
    return sizes


def folder_size(path: Path, limit: int = 200_000) -> int | None:
    """Bytes in a folder (None when unreachable or past `limit` entries: too big to count per page)."""
    total, seen = 0, 0
    try:
        stack = [str(path)]
        while stack:
            for entry in os.scandir(stack.pop()):
                seen += 1
                if seen > limit:
                    return None
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        return None
    return total


def _services(data: backup_jobs.StackData) -> list[dict]:
    sizes = _volume_sizes()
    here = backup_jobs.folders_here(data.engine)
    rows = []
    for name in sorted(data.config.get("services") or {}):
        mode, why = consistency(data.labels.get(name, {}), data.images.get(name, ""))
        mounts = []
        for m in data.mounts(name):
            if m.kind == "volume":
                size = sizes.get(m.source)
                mounts.append(
                    {
                        "kind": "volume",
                        "name": m.name,
                        "source": m.source,
                        "target": m.target,
                        "size": size if size is not None and size >= 0 else None,
                        "missing": size is None and bool(sizes),
                    }
                )
            elif not here or Path(m.source).is_dir():  # a remote host's folder: listed, its size unknown here
                mounts.append(
                    {
                        "kind": "bind",
                        "name": m.name,
                        "source": m.source,
                        "target": m.target,
                        "size": folder_size(Path(m.source)) if here else None,
                        "missing": False,
                    }
                )
        rows.append({"name": name, "mode": mode, "why": why, "mounts": mounts, "image": data.images.get(name, "")})
    return rows


# -- pages -----------------------------------------------------------------------------------------
def _list_context() -> dict:
    running = jobs().running(_key())
    found = backup_store().list()
    for m in found:
        if m.status == "running" and running is None:  # its job died with a previous Stackpilot process
            m.status, m.error = "failed", "interrupted: Stackpilot stopped during this backup"
    return {"backups": found, "running": running, "recent_jobs": jobs().recent(_key())}


@bp.get("/")
@require_role("admin")
def index():
    data = stack_data()
    schedule = store().get_setting(_schedule_key(), {}) or {}
    return render_template(
        "backups/page.html", services=_services(data), root=backups_root(), schedule=schedule, **_list_context()
    )


@bp.get("/-/list")
@require_role("admin")
def listing():
    return render_template("backups/_list.html", **_list_context())


def _audit(action: str, target: str, result: str = "ok", detail: str = "") -> None:
    store().audit(g.user.username, action, target[:500], result, detail[:500])


@bp.post("/run")
@require_role("admin")
def run():
    data = stack_data()
    wanted = request.form.get("service", "")
    services = sorted(data.config.get("services") or {})
    if wanted and wanted not in services:
        raise NotFound(f"There is no service {wanted!r} in this stack.")
    chosen = [wanted] if wanted else services
    scope = wanted or "all"
    the_store, user, key = store(), g.user.username, _key()
    target = backup_store()

    def work(job: backup_jobs.Job) -> None:
        manifest = backup_jobs.backup(data, target, chosen, scope, user)
        job.result = manifest.id
        job.state = manifest.status
        job.text = manifest.error
        detail = f"{manifest.id}; {manifest.size} bytes; {manifest.duration:.1f} s"
        the_store.audit(user, "backup.run", f"{key}: {scope}", manifest.status, f"{detail}; {manifest.error}"[:500])

    jobs().start(key, f"Back up {scope}", user, work)
    return render_template("backups/_list.html", **_list_context())


@bp.get("/<backup_id>/restore")
@require_role("admin")
def restore_confirm(backup_id: str):
    plan = backup_jobs.plan_restore(backup_store(), backup_id, request.args.get("service", ""))
    return render_template("backups/_confirm.html", plan=plan)


@bp.post("/<backup_id>/restore")
@require_role("admin")
def restore(backup_id: str):
    target = backup_store()
    plan = backup_jobs.plan_restore(target, backup_id, request.form.get("service", ""))
    data = stack_data()
    the_store, user, key = store(), g.user.username, _key()

    def work(job: backup_jobs.Job) -> None:
        try:
            safety = backup_jobs.restore(data, target, plan, user)
        except StackpilotError as e:
            the_store.audit(
                user, "backup.restore", f"{key}: {plan.service} from {plan.backup_id}", "failed", e.message[:500]
            )
            raise
        job.result = safety.id
        job.text = f"Restored; what was there before is kept as {safety.id}."
        the_store.audit(
            user,
            "backup.restore",
            f"{key}: {plan.service} from {plan.backup_id}",
            "ok",
            f"safety backup {safety.id}; replaced {', '.join(plan.replaced())}"[:500],
        )

    jobs().start(key, f"Restore {plan.service} from {plan.backup_id}", user, work)
    return render_template("backups/_list.html", **_list_context())


@bp.get("/<backup_id>/files/<name>")
@require_role("admin")
def download(backup_id: str, name: str):
    path = backup_store().file(backup_id, name)
    _audit("backup.download", f"{_key()}: {backup_id}/{name}")
    return send_file(
        path,
        as_attachment=True,
        download_name=f"{_key()}-{backup_id}-{name}",
        mimetype="application/gzip",
        conditional=False,
        etag=False,
        max_age=0,
    )


@bp.post("/settings")
@require_role("admin")
def save_settings():
    raw = request.form.get("root", "").strip()
    if raw:
        path = Path(raw)
        if not path.is_absolute():
            raise InvalidInput("The backups folder is an absolute path (e.g. /mnt/nas/stackpilot-backups).")
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = path / f".stackpilot-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise InvalidInput(f"Stackpilot cannot write into {path}: {e.strerror or e}.") from None
    current = dict(store().get_setting(SETTING, {}) or {})
    current["root"] = raw
    store().set_setting(SETTING, current)
    _audit("backup.settings", "folder", detail=raw or "(default)")
    schedule = store().get_setting(_schedule_key(), {}) or {}
    return render_template("backups/_settings.html", root=backups_root(), schedule=schedule, saved=True)


def _schedule_key() -> str:
    return f"backups.schedule:{_key()}"


@bp.post("/schedule")
@require_role("admin")
def save_schedule():
    schedule = parse_schedule(request.form)
    entry = current_entry()
    schedule["stack"] = entry.slug if entry is not None else ""
    store().set_setting(_schedule_key(), schedule)
    _audit("backup.schedule", _key(), detail=str({k: v for k, v in schedule.items() if k != "stack"}))
    return render_template("backups/_settings.html", root=backups_root(), schedule=schedule, saved=True)


# -- issue 15: Down -v -------------------------------------------------------------------------------
def guard_down_volumes(typed: str) -> None:
    """Refuse a Down -v that deletes a volume whose last backup failed, unless its name was typed."""
    from app.backups import guard

    failed = guard.failed_volumes(stack_runner().config_json(), backup_store().list())
    if failed:
        guard.check_typed(failed, typed)


def backup_then(title: str, then: Callable[[], None]) -> str:
    """Back up the whole stack in a job, then call `then` (the down) only if the backup is ok."""
    if not has_role("admin"):
        raise Forbidden("Backups are for admins: ask one, or take the stack down without backing up.")
    data = stack_data()
    the_store, user, key = store(), g.user.username, _key()
    target = backup_store()

    def work(job: backup_jobs.Job) -> None:
        manifest = backup_jobs.backup(data, target, sorted(data.config.get("services") or {}), "all", user)
        job.result, job.state, job.text = manifest.id, manifest.status, manifest.error
        detail = f"{manifest.id}; {manifest.size} bytes; {manifest.duration:.1f} s; before: {title}"
        the_store.audit(user, "backup.run", f"{key}: all", manifest.status, f"{detail}; {manifest.error}"[:500])
        if manifest.status == "ok":
            then()
        else:
            job.text = f"{manifest.error} — so {title} did not run."

    jobs().start(key, f"Back up all, then {title}", user, work)
    return render_template("backups/_then.html", title=title)


# -- issue 15: a failed backup is shown on the services page until an admin marks it seen -----------
def _seen_key() -> str:
    return f"backups.seen:{_key()}"


def backup_failures() -> list:
    """The failed backups (scheduled or manual) newer than the last one an admin marked seen."""
    try:
        seen = str((store().get_setting(_seen_key(), {}) or {}).get("upto", ""))
        found = backup_store().list()
    except (StackpilotError, OSError):
        return []
    return [m for m in found if m.status == "failed" and m.id > seen and not m.scope.startswith("safety:")]


@bp.post("/-/seen")
@require_role("admin")
def mark_seen():
    upto = request.form.get("upto", "")
    backup_store().path(upto)  # a real backup id, else 404
    store().set_setting(_seen_key(), {"upto": upto, "by": g.user.username, "at": time.time()})
    _audit("backup.seen", f"{_key()}: {upto}")
    return render_template("backups/_failed_banner.html", failures=backup_failures())
