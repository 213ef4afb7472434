"""Back up and restore the data of a stack's services, step by step.

Back up, per service: choose the consistency mode (label, else database image, else stop), stop the
service's containers for the copy when the mode says so (started again whatever happens), copy each
mount as a .tar.gz (volumes through a created, never started container of the service's own image;
bind folders read directly on the local engine; on a remote one the folder is on the engine's host,
so it goes through such a container too, bound instead of the volume), note sizes and sha256 in
the manifest, with the .env backup taken at the same moment. A failure halfway marks the backup
failed, removes its partial archives and still starts what was stopped.

Restore, one service: verify the archives' sha256, stop the service, keep what is there now as a
safety backup, empty the mount, write, start, and compare the written files with the archive's list.
Only that service's mounts are written; a volume another running service uses is refused.

Restore of a dump (Postgres, MySQL/MariaDB): the database must be running (it loads the dump); a
safety dump is taken first, then the .sql.gz is streamed into the database's own client through exec
(stdin attached). Postgres: every database but the templates is dropped (their connections ended)
and `postgres` made again, then the pg_dumpall output runs in psql with ON_ERROR_STOP off, because
such a dump re-creates the roles that exist already (the one we connect as, at least): "role ...
already exists" is expected; any other error fails the restore, naming the safety dump. Roles made
after the backup are kept. MySQL/MariaDB: the server's other connections are ended, then the
mysqldump output (DROP TABLE IF EXISTS before each table) runs in `mariadb` or `mysql`, stopping at the
first error, and the privileges are flushed: every dumped table is replaced, the grant tables of the
`mysql` database among them (users made after the backup are gone); tables and databases made after
the backup are kept. A Redis backup is its volume after a BGSAVE, so it restores as a volume: Redis
is stopped, the volume replaced (dump.rdb, appendonly files), started.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.backups.mounts import FAMILY_NAMES
from app.backups.mounts import Mount
from app.backups.mounts import consistency
from app.backups.mounts import image_family
from app.backups.mounts import service_mounts
from app.backups.store import BackupStore
from app.backups.store import Entry
from app.backups.store import Manifest
from app.backups.streams import empty_folder
from app.backups.streams import extract_to_folder
from app.backups.streams import file_list
from app.backups.streams import file_sha256
from app.backups.streams import read_folder
from app.backups.streams import read_gzip
from app.backups.streams import write_gzip
from app.engine import Engine
from app.engine import archives
from app.engine import containers as engine_containers
from app.engine import exec as engine_exec
from app.errors import InvalidInput
from app.errors import StackpilotError

log = logging.getLogger(__name__)


@dataclass
class StackData:
    """What a job needs to know about the stack (made by the web layer from the request's stack)."""

    engine: Engine
    project: str
    key: str  # the stack's slug: its folder under the backups root
    directory: Path | None  # the stack folder (its .env is backed up with the data)
    config: dict  # `compose config --format json`
    images: dict[str, str]  # service -> configured image
    labels: dict[str, dict[str, str]]
    env_keep: int = 30
    lock: Callable[[str], AbstractContextManager] = field(default=lambda title: nullcontext())
    own: str | None = None  # Stackpilot's own service in this stack: never stopped, backed up or restored

    def mounts(self, service: str) -> list[Mount]:
        return service_mounts(self.config, service)


def folders_here(engine: Engine) -> bool:
    """Whether the engine's bind folders are ours to read and write directly (the local engine: the
    fast path). A remote engine's (TCP, TLS, SSH) are on its host: a local path of the same name is
    missing or someone else's, so they go through a helper container of the service's image."""
    return engine.kind == "local"


def _containers(data: StackData, service: str) -> list:
    return [c for c in engine_containers.project_containers(data.engine, data.project) if c.service == service]


def _image_for(data: StackData, service: str, found: list) -> str:
    """The image to read volumes with: the service's container's image id, else its configured image."""
    if found:
        return archives.image_of(data.engine, found[0].id)
    return data.images.get(service, "")


def _env_backup(data: StackData) -> str:
    if data.directory is None:
        return ""
    env = Path(data.directory) / ".env"
    if not env.is_file():
        return ""
    from app.stack.backups import take_backup

    return take_backup(Path(data.directory), env.read_bytes(), data.env_keep).name


def backup(
    data: StackData,
    store: BackupStore,
    services: list[str],
    scope: str,
    user: str = "",
    modes: dict[str, str] | None = None,
    progress: Callable[[str], None] = lambda text: None,
    take_lock: bool = True,
) -> Manifest:
    """Back up the mounts of `services` into one new backup; returns its manifest (ok or failed)."""
    manifest = Manifest(
        id=store.new_id(scope),
        stack=data.key,
        project=data.project,
        scope=scope,
        taken_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        user=user,
    )
    started = time.monotonic()
    work = store.begin(manifest)
    try:
        with data.lock(f"Back up {scope}") if take_lock else nullcontext():
            manifest.env_backup = _env_backup(data)
            for service in services:
                mode = (
                    "skip"  # stopping ourselves would end the job (and the UI) half way
                    if service == data.own
                    else (modes or {}).get(service)
                    or consistency(data.labels.get(service, {}), data.images.get(service, ""))[0]
                )
                manifest.modes[service] = mode
                if mode == "skip" or not data.mounts(service):
                    continue
                progress(f"{service}: {mode}")
                _backup_service(data, store, work, manifest, service, mode)
        manifest.status = "ok"
    except Exception as e:
        manifest.status = "failed"
        manifest.error = e.message if isinstance(e, StackpilotError) else f"{e.__class__.__name__}: {e}"[:500]
        if not isinstance(e, StackpilotError):
            log.exception("backup %s failed", manifest.id)
        for entry in manifest.entries:
            if entry.file:
                (work / entry.file).unlink(missing_ok=True)
        manifest.entries = [e for e in manifest.entries if e.sha256]  # what was finished stays listed
        for entry in manifest.entries:
            entry.file = ""
    manifest.duration = round(time.monotonic() - started, 2)
    store.finish(work, manifest)
    return manifest


def _backup_service(
    data: StackData, store: BackupStore, work: Path, manifest: Manifest, service: str, mode: str
) -> None:
    found = _containers(data, service)
    image = _image_for(data, service, found)
    if not image:
        raise InvalidInput(f"{service} has no image to read its volumes with (build it or pull it first).")
    running = [c for c in found if c.state == "running"]
    if mode == "dump":
        _dump(data, store, work, manifest, service, running, image)
        return
    stopped_at = None
    try:
        if mode == "stop" and running:
            stopped_at = time.monotonic()
            for c in running:
                engine_containers.stop(data.engine, c.id)
        for mount in data.mounts(service):
            _copy_mount(data, store, work, manifest, service, mount, image)
        _unchanged(data, service, running, stopped=mode == "stop")
    finally:
        now = {c.id: c for c in _containers(data, service)}
        for c in running:
            if getattr(now.get(c.id), "state", "") == "running":
                continue
            try:
                engine_containers.start(data.engine, c.id)
            except StackpilotError as e:
                log.warning("could not start %s again after its backup: %s", c.name, e.message)
        if stopped_at is not None:
            manifest.downtime[service] = round(time.monotonic() - stopped_at, 2)


def _unchanged(data: StackData, service: str, before: list, stopped: bool) -> None:
    """A copy is trusted only if the service stayed as it was: not killed or restarted during a live
    copy, not started by someone during a stopped one."""
    now = {c.id: c for c in _containers(data, service)}
    for c in before:
        after = now.get(c.id)
        if stopped:
            if after is not None and after.state == "running":
                raise StackpilotError(f"{c.name} was started during the copy; the copy is not trusted.")
        elif after is None or after.state != "running" or after.started_at != c.started_at:
            raise StackpilotError(
                f"{c.name} stopped or restarted during the copy; the copy is not trusted (it was started again)."
            )


def _copy_mount(
    data: StackData, store: BackupStore, work: Path, manifest: Manifest, service: str, mount: Mount, image: str
) -> None:
    entry = Entry(
        service=service, kind=mount.kind, name=mount.name, source=mount.source, target=mount.target, image=image
    )
    path = store.archive_path(work, len(manifest.entries) + 1, entry, "tar.gz")
    entry.file = path.name
    manifest.entries.append(entry)
    if mount.kind == "volume":
        if not archives.volume_exists(data.engine, mount.source):
            manifest.entries.remove(entry)  # never created yet: nothing to keep
            return
        chunks = archives.read_volume(data.engine, image, mount.source)
    elif folders_here(data.engine):
        if not Path(mount.source).is_dir():  # a bound file (a config) is part of the stack folder, not data
            manifest.entries.remove(entry)
            return
        chunks = read_folder(Path(mount.source))
    else:  # opened now: a folder missing on the engine's host fails here (FolderMissing), before the archive
        chunks = archives.read_volume(data.engine, image, mount.source, kind="bind").open()
        if not chunks.is_dir:  # a bound file, as above
            chunks.close()
            manifest.entries.remove(entry)
            return
    written = write_gzip(chunks, path)
    entry.tar_bytes, entry.file_bytes, entry.sha256 = written.tar_bytes, written.file_bytes, written.sha256


# MySQL/MariaDB, as the official images document their dumps: root with the password the image was
# set up with (MARIADB_* before MYSQL_*, or their *_FILE secrets), handed over in MYSQL_PWD (both
# clients read it) rather than as -p on the command line, which anyone in the container sees in ps;
# none when it is empty (a bare -p would ask, and a restore's client would take the dump's first line
# as the password). The tools
# by either name: mariadb-dump / mariadb where they exist (the official mariadb images from 11.0 have
# no mysql* names; Debian's 10.11 has both), else mysqldump / mysql (the official mysql images).
MYSQL_ROOT = (
    'pw="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"; '
    'file="${MARIADB_ROOT_PASSWORD_FILE:-${MYSQL_ROOT_PASSWORD_FILE:-}}"; '
    'if [ -z "$pw" ] && [ -n "$file" ]; then pw="$(cat "$file")"; fi; '
    'if [ -n "$pw" ]; then export MYSQL_PWD="$pw"; fi; set -- -uroot; '
)
MYSQL_TOOLS = {"dump": ("mariadb-dump", "mysqldump"), "client": ("mariadb", "mysql")}


def _pick(tools: tuple[str, ...]) -> str:
    """Shell that sets $tool to the first of `tools` on the container's PATH (the last as the fallback)."""
    first, *rest = tools
    picks = "".join(f"elif command -v {t} >/dev/null 2>&1; then tool={t}; " for t in rest[:-1])
    return f"if command -v {first} >/dev/null 2>&1; then tool={first}; {picks}else tool={tools[-1]}; fi; "


DUMP_COMMANDS = {
    "postgres": (["sh", "-c", 'pg_dumpall -U "${POSTGRES_USER:-postgres}"'], "sql.gz"),
    # --single-transaction: InnoDB tables as of one moment, without locking them; routines and
    # events too (MySQL 8 keeps them outside the mysql tables); utf8mb4 (the 5.7 tools default to utf8)
    "mysql": (
        [
            "sh",
            "-c",
            MYSQL_ROOT
            + _pick(MYSQL_TOOLS["dump"])
            + 'exec "$tool" "$@" --all-databases --single-transaction --routines --events '
            "--default-character-set=utf8mb4",
        ],
        "sql.gz",
    ),
}


def _dump(
    data: StackData, store: BackupStore, work: Path, manifest: Manifest, service: str, running: list, image: str
) -> None:
    """A consistent copy of a running database: pg_dumpall / mysqldump through exec, or Redis's BGSAVE
    followed by a copy of its volume."""
    if not running:
        raise InvalidInput(
            f"{service} is not running: a dump needs the database up (or label it stackpilot.backup: stop)."
        )
    family = image_family(data.images.get(service, ""))
    cid = running[0].id
    if not family:  # labelled dump: find the tool in the container
        family = next(
            (
                f
                for f, tool in (
                    ("postgres", "pg_dumpall"),
                    ("mysql", "mariadb-dump"),
                    ("mysql", "mysqldump"),
                    ("redis", "redis-cli"),
                )
                if engine_exec.has_command(data.engine, cid, tool)
            ),
            "",
        )
    if family == "redis":
        _redis_save(data, cid)
        for mount in data.mounts(service):
            _copy_mount(data, store, work, manifest, service, mount, image)
        return
    if family not in DUMP_COMMANDS:
        raise InvalidInput(f"{service}: no dump tool is known for its image; label it stackpilot.backup: stop.")
    cmd, suffix = DUMP_COMMANDS[family]
    entry = Entry(service=service, kind="dump", name=family, source=running[0].name, target="", image=image)
    path = store.archive_path(work, len(manifest.entries) + 1, entry, suffix)
    entry.file = path.name
    manifest.entries.append(entry)
    output = engine_exec.Output(data.engine, cid, cmd)
    written = write_gzip(output, path)
    code = output.exit_code
    if code != 0:
        raise StackpilotError(
            f"The {family} dump of {service} failed (exit {code}): {output.stderr.decode(errors='replace')[-300:]}"
        )
    entry.tar_bytes, entry.file_bytes, entry.sha256 = written.tar_bytes, written.file_bytes, written.sha256


def _redis_save(data: StackData, cid: str, timeout: float = 120) -> None:
    def lastsave() -> str:
        out = b"".join(engine_exec.Output(data.engine, cid, ["redis-cli", "LASTSAVE"]))
        return out.decode(errors="replace").strip()

    before = lastsave()
    b"".join(engine_exec.Output(data.engine, cid, ["redis-cli", "BGSAVE"]))
    deadline = time.monotonic() + timeout
    while lastsave() == before:
        if time.monotonic() > deadline:
            raise StackpilotError("Redis did not finish its BGSAVE in time.")
        time.sleep(0.2)


# -- restore -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestorePlan:
    """What a restore will replace, for the confirmation: (kind, name, where) per entry."""

    backup_id: str
    service: str
    entries: tuple[Entry, ...]

    @property
    def dump(self) -> Entry | None:
        """The dump this restore loads (a dump is restored alone, into the running database)."""
        return next((e for e in self.entries if e.kind == "dump"), None)

    def replaced(self) -> list[str]:
        if self.dump is not None:
            what = "every database but the templates" if self.dump.name == "postgres" else "every dumped table"
            return [f"{what} of the {FAMILY_NAMES.get(self.dump.name, self.dump.name)} server in {self.service}"]
        return [f"{'volume' if e.kind == 'volume' else 'folder'} {e.source}" for e in self.entries]


def plan_restore(store: BackupStore, backup_id: str, service: str) -> RestorePlan:
    manifest = store.get(backup_id)
    if manifest.status != "ok":
        raise InvalidInput("Only a backup that finished can be restored.")
    mine = [e for e in manifest.entries if e.service == service and e.file]
    dumps = tuple(e for e in mine if e.kind == "dump")
    if dumps:
        if dumps[0].name not in RESTORE_COMMANDS:
            raise InvalidInput(f"Stackpilot cannot load a {dumps[0].name} dump back; restore it by hand.")
        return RestorePlan(backup_id, service, dumps[:1])
    entries = tuple(e for e in mine if e.kind in ("volume", "bind"))
    if not entries:
        raise InvalidInput(f"That backup holds no volume, folder or dump of {service} to restore.")
    return RestorePlan(backup_id, service, entries)


def restore(data: StackData, store: BackupStore, plan: RestorePlan, user: str = "") -> Manifest:
    """Stop, keep a safety backup, write, start, verify; returns the safety backup's manifest.
    Raises with what went wrong; the service is started again in every case."""
    if plan.service == data.own:
        raise InvalidInput(
            f"{plan.service} is Stackpilot itself: it cannot stop itself to restore its own data; "
            "restore it from the host with the archive."
        )
    for entry in plan.entries:
        if file_sha256(store.file(plan.backup_id, entry.file)) != entry.sha256:
            raise StackpilotError(
                f"The archive {entry.file} does not match its sha256: it changed since the "
                "backup; nothing was restored."
            )
        if entry.kind != "dump":
            _mine_only(data, plan.service, entry)
    if plan.dump is not None:
        return _restore_dump(data, store, plan, plan.dump, user)
    with data.lock(f"Restore {plan.service}"):
        found = _containers(data, plan.service)
        running = [c for c in found if c.state == "running"]
        try:
            for c in running:
                engine_containers.stop(data.engine, c.id)
            safety = backup(
                data,
                store,
                [plan.service],
                f"safety:{plan.service}",
                user,
                modes={plan.service: "live"},
                take_lock=False,
            )
            if safety.status != "ok":
                raise StackpilotError(f"The safety backup failed ({safety.error}); nothing was restored.")
            image = _image_for(data, plan.service, found)
            for entry in plan.entries:
                archive = store.file(plan.backup_id, entry.file)
                _write_entry(data, entry, archive, image)
                expected = file_list(read_gzip(archive))
                now = file_list(_read_entry(data, entry, image))
                if now != expected:
                    diff = sorted(set(expected) ^ set(now))[:3]
                    raise StackpilotError(
                        f"What was written into {entry.source} differs from the backup: "
                        f"{'; '.join(diff)}. The safety backup {safety.id} holds what was there."
                    )
        finally:
            for c in running:
                try:
                    engine_containers.start(data.engine, c.id)
                except StackpilotError as e:
                    log.warning("could not start %s after the restore: %s", c.name, e.message)
    return safety


# Postgres: connected to template1, drop every other database (ending its connections: WITH (FORCE)
# from 13 on) and make `postgres` again, stopping at the first error; then the dump runs with
# ON_ERROR_STOP off (its CREATE ROLE for roles that exist fails, harmlessly). Lock waits end after two
# minutes (an app reconnects at once and may hold a lock the dump's DDL needs): here, and in each
# database's part of the dump, whose own `SET lock_timeout = 0;` is rewritten (POSTGRES_LOCK_TIMEOUT).
# Every client's input ends in-band with `\\q` (exec.feed never half-closes the connection).
POSTGRES_PRELUDE = b"""\\set ON_ERROR_STOP on
SET lock_timeout = '120s';
SELECT current_setting('server_version_num')::int >= 130000 AS force \\gset
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname IS NOT NULL AND datname NOT IN ('template0', 'template1') AND pid <> pg_backend_pid();
\\if :force
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database
 WHERE datname NOT IN ('template0', 'template1') \\gexec
\\else
SELECT format('DROP DATABASE %I', datname) FROM pg_database WHERE datname NOT IN ('template0', 'template1') \\gexec
\\endif
CREATE DATABASE postgres;
\\set ON_ERROR_STOP off
"""
# (the list is read before the second client connects: in a pipe it would be listed, and ended, too)
MYSQL_END_OTHERS = (
    'ids="$("$tool" "$@" -N -B -e "SELECT CONCAT(\'KILL \', id, \';\') FROM information_schema.processlist '
    "WHERE id <> CONNECTION_ID() AND command NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID') "
    "AND user NOT IN ('system user', 'event_scheduler')\" </dev/null 2>/dev/null)\"; "
    'if [ -n "$ids" ]; then printf \'%s\\n\' "$ids" | "$tool" "$@" --force >/dev/null 2>&1; fi; '
)
RESTORE_COMMANDS = {
    "postgres": (
        ["sh", "-c", 'exec psql -X -q -v ON_ERROR_STOP=0 -U "${POSTGRES_USER:-postgres}" -d template1'],
        POSTGRES_PRELUDE,
        b"\n\\q\n",
        ("psql",),
    ),
    # mysqldump's DROP TABLE IF EXISTS / CREATE / INSERT per table, the grant tables of `mysql` among
    # them: FLUSH PRIVILEGES after, so the users and grants the server goes by are the restored ones
    # now, not only after its next start. The other connections are ended first, as for Postgres:
    # one inside a transaction holds its tables' metadata locks, and DROP TABLE would wait for it
    # (lock_wait_timeout is a day by default; ours is two minutes, for a client that comes back).
    "mysql": (
        ["sh", "-c", MYSQL_ROOT + _pick(MYSQL_TOOLS["client"]) + MYSQL_END_OTHERS + 'exec "$tool" "$@"'],
        b"SET SESSION lock_wait_timeout = 120;\n",
        b"\nFLUSH PRIVILEGES;\n\\q\n",
        MYSQL_TOOLS["client"],
    ),
}
EXPECTED_ERRORS = (re.compile(r'ERROR:\s+role "[^"]+" already exists'),)
# pg_dump starts each database's part with these lines; only the whole pair is rewritten.
POSTGRES_LOCK_TIMEOUT = (
    b"\nSET statement_timeout = 0;\nSET lock_timeout = 0;\n",
    b"\nSET statement_timeout = 0;\nSET lock_timeout = '120s';\n",
)
RESTORE_STALL = engine_exec.STALL_SECONDS


def _replace_in_stream(chunks, old: bytes, new: bytes):
    """`chunks` with every `old` replaced by `new`, also where `old` spans two chunks."""
    keep = len(old) - 1
    held = b""
    for chunk in chunks:
        held = (held + chunk).replace(old, new)
        if len(held) > keep:
            yield held[:-keep]
            held = held[-keep:]
    yield held


class _ErrorLines:
    """Counts the client's error lines as its stderr comes (an early error followed by many notices
    must not scroll out of the kept tail), keeping the first few for the message."""

    def __init__(self) -> None:
        self.partial = b""
        self.count = 0
        self.first: list[str] = []

    def __call__(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for raw in lines:
            self.line(raw.decode(errors="replace"))

    def line(self, line: str) -> None:
        if ("ERROR:" in line or "FATAL:" in line) and not any(p.search(line) for p in EXPECTED_ERRORS):
            self.count += 1
            if len(self.first) < 3:
                self.first.append(line.strip())

    def done(self) -> None:
        if self.partial:
            self.line(self.partial.decode(errors="replace"))
            self.partial = b""


def _restore_dump(data: StackData, store: BackupStore, plan: RestorePlan, entry: Entry, user: str) -> Manifest:
    """Load a dump into the running database, after a safety dump of what it holds now."""
    cmd, prelude, epilogue, tools = RESTORE_COMMANDS[entry.name]
    with data.lock(f"Restore {plan.service}"):
        running = [c for c in _containers(data, plan.service) if c.state == "running"]
        if not running:
            raise InvalidInput(
                f"{plan.service} is not running: a dump is loaded into the running database. Start it first."
            )
        tool = next((t for t in tools if engine_exec.has_command(data.engine, running[0].id, t)), "")
        if not tool:
            raise InvalidInput(
                f"{plan.service} has no {' or '.join(tools)} to load the dump with; nothing was restored."
            )
        safety = backup(
            data, store, [plan.service], f"safety:{plan.service}", user, modes={plan.service: "dump"}, take_lock=False
        )
        if safety.status != "ok":
            raise StackpilotError(f"The safety dump failed ({safety.error}); nothing was restored.")

        def stream():
            yield prelude
            dump = read_gzip(store.file(plan.backup_id, entry.file))
            yield from _replace_in_stream(dump, *POSTGRES_LOCK_TIMEOUT) if entry.name == "postgres" else dump
            yield epilogue  # only after the whole archive was read: it ends the client's input

        errors = _ErrorLines()
        kept = f"The safety dump {safety.id} holds what was there."
        try:
            fed = engine_exec.feed(data.engine, running[0].id, cmd, stream(), stall=RESTORE_STALL, on_stderr=errors)
        except StackpilotError as e:
            raise StackpilotError(f"Loading the dump into {plan.service} failed: {e.message} {kept}") from e
        except (OSError, EOFError) as e:  # the archive could not be read to its end (its session was cut)
            raise StackpilotError(
                f"Reading the archive {entry.file} failed while loading it into {plan.service} ({e}); "
                f"part of it may have been loaded. {kept}"
            ) from e
        errors.done()
        if fed.exit_code != 0 or errors.count:
            detail = "; ".join(errors.first) or fed.stderr.decode(errors="replace")[-300:].strip()
            raise StackpilotError(
                f"Loading the dump into {plan.service} failed ({tool} exit {fed.exit_code}"
                f"{f', {errors.count} errors' if errors.count else ''}): {detail}. {kept}"
            )
    return safety


def _overlaps(kind: str, source: str, other_kind: str, other_source: str) -> bool:
    """The same volume, or bind folders where one is the other or lies inside it (emptying a parent
    folder would wipe the child service's data while it runs)."""
    if kind != other_kind:
        return False
    if kind != "bind":
        return source == other_source
    a, b = Path(source), Path(other_source)
    return a == b or a in b.parents or b in a.parents


def _mine_only(data: StackData, service: str, entry: Entry) -> None:
    """A restore writes only this service's mounts: the entry must still be one of them, and no other
    service of the stack may mount the same volume or folder."""
    mounts = {(m.kind, m.source) for m in data.mounts(service)}
    if (entry.kind, entry.source) not in mounts:
        raise InvalidInput(f"{service} no longer mounts {entry.source}; nothing was restored.")
    others = [
        s
        for s in (data.config.get("services") or {})
        if s != service and any(_overlaps(entry.kind, entry.source, m.kind, m.source) for m in data.mounts(s))
    ]
    if others:
        raise InvalidInput(
            f"{entry.source} is also used by {', '.join(others)}: restoring it would change their "
            "data too; nothing was restored."
        )


def _write_entry(data: StackData, entry: Entry, archive: Path, image: str) -> None:
    if entry.kind == "volume":
        if archives.volume_exists(data.engine, entry.source):
            archives.empty_volume(data.engine, image, entry.source)
        else:
            data.engine.call(
                lambda c: c.api.create_volume(
                    entry.source,
                    labels={"com.docker.compose.project": data.project, "com.docker.compose.volume": entry.name},
                ),
                what="volume",
            )
        archives.write_volume(data.engine, image, entry.source, read_gzip(archive))
    elif not folders_here(data.engine):  # the folder on the engine's host, as a volume (made when missing)
        archives.empty_volume(data.engine, image, entry.source, kind="bind")
        archives.write_volume(data.engine, image, entry.source, read_gzip(archive), kind="bind")
    else:
        folder = Path(entry.source)
        folder.mkdir(parents=True, exist_ok=True)
        empty_folder(folder)
        extract_to_folder(read_gzip(archive), folder)


def _read_entry(data: StackData, entry: Entry, image: str):
    if entry.kind == "volume":
        return archives.read_volume(data.engine, image, entry.source)
    if not folders_here(data.engine):
        return archives.read_volume(data.engine, image, entry.source, kind="bind")
    return read_folder(Path(entry.source))


# -- jobs in the background ------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    stack: str
    title: str
    user: str
    started: float = field(default_factory=time.time)
    state: str = "running"  # running | ok | failed
    text: str = ""
    result: str = ""  # the backup id it made


class Jobs:
    """Backups and restores running in threads of the app; one per stack at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._threads: list[threading.Thread] = []

    def running(self, stack: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.stack == stack and j.state == "running"), None)

    def recent(self, stack: str) -> list[Job]:
        with self._lock:
            return sorted((j for j in self._jobs.values() if j.stack == stack), key=lambda j: -j.started)[:10]

    def start(self, stack: str, title: str, user: str, work: Callable[[Job], None]) -> Job:
        with self._lock:
            busy = next((j for j in self._jobs.values() if j.stack == stack and j.state == "running"), None)
            if busy is not None:
                from app.errors import StackBusy

                raise StackBusy(f"{busy.title} is running (started by {busy.user}); try again when it ends.")
            job = Job(id=f"{int(time.time() * 1000):x}", stack=stack, title=title, user=user)
            self._jobs[job.id] = job

        def body() -> None:
            try:
                work(job)
                if job.state == "running":
                    job.state = "ok"
            except Exception as e:
                job.state = "failed"
                job.text = e.message if isinstance(e, StackpilotError) else f"{e.__class__.__name__}: {e}"[:500]
                if not isinstance(e, StackpilotError):
                    log.exception("backup job %s failed", job.title)

        thread = threading.Thread(target=body, name=f"backup-{job.id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return job

    def join(self, timeout: float = 30) -> None:
        """Wait for running jobs (shutdown, tests)."""
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
