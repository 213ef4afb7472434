"""The /api/v1 endpoints: stacks, runs, services, logs, stats, groups (see openapi.py for the contract).

Per-stack paths carry the stack's slug (`-` is the default stack): app.web.context resolves it
before the view runs (unknown or hidden: 404), so `current_stack()`, `stack_engine()` and
`stack_runner()` are this stack's. Names are checked against the Compose model before anything
runs (InvalidName: 404). Long actions answer 202 with a run; `?wait=<seconds>` waits for it.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from datetime import datetime

from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from flask import render_template
from flask import request
from flask import url_for

from app import compose
from app.engine import containers as engine_containers
from app.engine import logs as engine_logs
from app.engine.self import own_container_id
from app.engine.self import own_service
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import StackBusy
from app.errors import StackpilotError
from app.stack.actions import SERVICE_ACTIONS
from app.stack.actions import names_arg
from app.stack.actions import others
from app.stack.actions import plan_build
from app.stack.actions import plan_service
from app.stack.actions import plan_stack
from app.stack.model import load_model
from app.stack.proxy import proxy_service
from app.stack.services import Row
from app.web.apiv1 import actor
from app.web.apiv1 import bp
from app.web.context import current_entry
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import settings
from app.web.context import stack_engine
from app.web.context import stack_of
from app.web.context import stack_runner
from app.web.context import store
from app.web.context import visible_entries
from app.web.security import require_role

STACK = "/stacks/<stack>"
MAX_WAIT = 120
MAX_TAIL = 10000
DEFAULT_GROUP = "core"  # services with no group label and no profile: the table calls them core too


# -- helpers -------------------------------------------------------------------------------------------
def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No such stack.")
    return stack


def _snapshot():
    from app.web.services import snapshot

    return snapshot()


def _own(stack) -> str | None:
    return own_service(stack_engine(), stack.project, settings().self_container_id)


def _proxy(stack) -> str | None:
    s = settings()
    return proxy_service(stack_engine(), stack.project, own_container_id(s.self_container_id), s.trusted_proxies)


def _body() -> dict:
    if not request.content_length:
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object (Content-Type: application/json).")
    return data


def _param(name: str, default=None):
    """A parameter from the JSON body or the query string."""
    body = g.get("api_body")
    if body is None:
        body = g.api_body = _body() if request.method in ("POST", "PATCH", "PUT") else {}
    return body.get(name, request.args.get(name, default))


def _int(name: str, default: int | None, low: int, high: int) -> int | None:
    value = _param(name, default)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}: a whole number between {low} and {high}.") from None
    if not low <= number <= high:
        raise InvalidInput(f"{name}: a whole number between {low} and {high}.")
    return number


def _flag(name: str) -> bool:
    value = _param(name, False)
    return value is True or str(value).lower() in ("1", "true", "yes")


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def row_json(row: Row, now: float) -> dict:
    return {
        "name": row.name,
        "group": row.group or DEFAULT_GROUP,
        "state": row.state,
        "status": row.word,
        "health": row.health or None,
        "health_output": row.health_output or None,
        "health_exit": row.health_exit,
        "image": row.image,
        "ports": [
            {"host_ip": p.host_ip, "host_port": p.host_port, "container_port": p.container_port, "protocol": p.protocol}
            for p in row.ports
        ],
        "uptime_seconds": round(row.uptime, 1) if row.uptime is not None else None,
        "restarts": row.restarts,
        "running": row.running,
        "replicas": row.replicas,
        "cpu_percent": round(row.cpu, 2) if row.cpu is not None else None,
        "memory_bytes": row.mem_used,
        "memory_limit_bytes": row.mem_limit or None,
        "sample_age_seconds": round(now - row.sample_at, 2) if row.sample_at else None,
        "containers": list(row.containers),
        "depends_on": list(row.depends_on),
        "active": row.active,
        "blocked_by": list(row.blocked_by),
        "drift": list(row.drift),
    }


def run_json(run: compose.Run, offset: int = 0, slug: str | None = None) -> dict:
    done = run.done
    lines, count = run.lines_since(offset)
    status = "running" if not done else ("succeeded" if run.ok else ("timed_out" if run.timed_out else "failed"))
    if slug is None:
        slug = current_entry().slug if current_entry() is not None else "-"
    return {
        "id": run.id,
        "title": run.title,
        "status": status,
        "exit_code": run.exit_code,
        "user": run.user,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "lines": lines,
        "offset": offset,
        "next_offset": count,
        "url": url_for("apiv1.run", stack=slug, run_id=run.id),
    }


def _audit_when_done(action: str, target: str, detail: str = ""):
    the_store = store()

    def done(run: compose.Run) -> None:
        result = "ok" if run.ok else ("timeout" if run.timed_out else f"failed (exit {run.exit_code})")
        the_store.audit(run.user, action, target, result, detail)

    return done


def _start(stack, args, title: str, action: str, target: str, detail: str = "", **extra):
    """Start a Compose run; 202 with it (200 when ?wait= saw it finish)."""
    user = actor()
    try:
        run = (
            runners()
            .for_stack(stack)
            .start(list(args), title=title, user=user, on_done=_audit_when_done(action, target, detail))
        )
    except StackBusy:
        store().audit(user, action, target, "refused: busy", detail)
        raise
    if request.headers.get("HX-Request"):  # the table's group buttons: the pages' progress panel
        lines, after = run.lines_since(0)
        return (
            render_template("services/_progress.html", run=run, lines=lines, after=after),
            200,
            {"HX-Trigger": "services-changed"},
        )
    wait = _int("wait", 0, 0, MAX_WAIT)
    if wait:
        run.wait(wait)
    body = {"run": run_json(run), **extra}
    if run.done and "services" in extra:
        engine_containers.forget()
        states = {r.name: r for r in _snapshot().rows}
        body["services"] = [
            {
                "name": n,
                "state": states[n].state if n in states else "unknown",
                "health": states[n].health or None if n in states else None,
            }
            for n in extra["services"]
        ]
    response = jsonify(body)
    response.status_code = 200 if run.done else 202
    response.headers["Location"] = body["run"]["url"]
    return response


def _refused(action: str, target: str, e: Exception):
    store().audit(actor(), action, target, f"refused: {type(e).__name__}")
    raise e


# -- stacks ----------------------------------------------------------------------------------------------
@bp.get("/stacks")
def stacks():
    out = []
    for entry in visible_entries():
        out.append(
            {
                "name": entry.slug,
                "project": entry.project or None,
                "engine": entry.engine,
                "directory": entry.directory or None,
                "source": entry.source,
                "url": url_for("apiv1.stack_status", stack=entry.slug),
            }
        )
    return jsonify({"stacks": out})


@bp.get(STACK)
@bp.get(STACK + "/status")
def stack_status():
    stack = _stack()
    snap = _snapshot()
    now = time.time()
    model = snap.model
    return jsonify(
        {
            "name": current_entry().slug,
            "project": stack.project,
            "engine": current_entry().engine,
            "profiles": list(stack.profiles),
            "available_profiles": sorted(model.profiles) if model else [],
            "engine_error": snap.engine_error or None,
            "model_error": snap.model_error.message if snap.model_error else None,
            "busy": stack_runner().busy(),
            "services": [row_json(r, now) for r in snap.rows],
        }
    )


@bp.post(STACK + "/<action>")
@require_role("operator")
def stack_action(action: str):
    if action not in ("up", "down", "pull", "restart", "build"):
        raise NotFound(f"No stack action {action!r}: up, down, pull, restart or build.")
    stack = _stack()
    model = load_model(runners().for_stack(stack))
    if action == "build":
        if not any(s.active and s.build_context for s in model.services.values()):
            raise InvalidInput("No service of this stack has a build section: its images are pulled, not built.")
        plan = plan_build(stack, "build", [], own=_own(stack), pull=_flag("pull"), no_cache=_flag("no_cache"))
        return _start(stack, plan.args, plan.title, "stack.build", stack.project, plan.detail)
    if action == "up" and _param("profiles") is not None:
        chosen = _param("profiles")
        if isinstance(chosen, str):
            chosen = [p for p in chosen.split(",") if p]
        if not isinstance(chosen, list) or [p for p in chosen if p not in model.profiles]:
            raise InvalidInput(f"profiles: a list of this stack's profiles ({', '.join(sorted(model.profiles))}).")
        stack = stack.with_changes(profiles=tuple(chosen))
        model = load_model(runners().for_stack(stack))
    try:
        plan = plan_stack(
            stack,
            action,
            model,
            own=_own(stack),
            delete_volumes=_flag("volumes"),
            proxy=_proxy(stack),
            insist=_flag("insist"),
        )
    except StackpilotError as e:
        _refused(f"stack.{action}", stack.project, e)
    if not plan.args:
        raise InvalidInput(plan.note or "Nothing to run.")
    return _start(stack, plan.args, plan.title, f"stack.{action}", stack.project, plan.detail, note=plan.note or None)


@bp.get(STACK + "/runs/<run_id>")
@require_role("operator")  # Compose output can quote .env values
def run(run_id: str):
    _stack()
    found = stack_runner().get_run(run_id)
    if found is None:
        raise NotFound("No such run on this stack (runs are kept in memory, the last 30).")
    offset = _int("offset", 0, 0, 2**31)
    return jsonify(run_json(found, offset))


@bp.get("/runs/<run_id>")
@require_role("operator")
def any_run(run_id: str):
    """A run by id alone, if it belongs to a stack the caller may see (404 otherwise, the same answer
    as for an id that never existed)."""
    found = runners().get_run(run_id)
    if found is not None:
        for entry in visible_entries():
            if entry.engine == found.engine and stack_of(entry).project == found.project:
                return jsonify(run_json(found, _int("offset", 0, 0, 2**31), slug=entry.slug))
    raise NotFound("No such run (runs are kept in memory, the last 30).")


# -- services ---------------------------------------------------------------------------------------------
def _row(name: str) -> Row:
    stack = _stack()
    load_model(runners().for_stack(stack)).require(name)  # unknown: InvalidName (404) before anything runs
    for row in _snapshot().rows:
        if row.name == name:
            return row
    raise NotFound(f"No service named {name!r}.")


@bp.get(STACK + "/services")
def services():
    now = time.time()
    return jsonify({"services": [row_json(r, now) for r in _snapshot().rows]})


@bp.get(STACK + "/services/<name>")
def service(name: str):
    row = _row(name)
    found = [c for c in engine_containers.project_containers(stack_engine(), _stack().project) if c.service == name]
    body = row_json(row, time.time())
    body["container_details"] = [
        {
            "id": c.id,
            "name": c.name,
            "number": c.number,
            "state": c.state,
            "health": c.health or None,
            "exit_code": c.exit_code,
            "started_at": c.started_at.isoformat() if c.started_at else None,
            "restart_count": c.restart_count,
            "image": c.image,
        }
        for c in sorted(found, key=lambda c: c.number)
    ]
    return jsonify(body)


@bp.post(STACK + "/services/<name>/<action>")
@require_role("operator")
def service_action(name: str, action: str):
    if action not in SERVICE_ACTIONS or action == "pull":
        raise NotFound(f"No service action {action!r}: start, stop, restart or recreate.")
    stack = _stack()
    service = load_model(runners().for_stack(stack)).require(name, active=True)
    timeout = _int("timeout", None, 0, engine_containers.MAX_STOP_TIMEOUT) if action in ("stop", "restart") else None
    exists = action != "start" or any(
        c.service == name for c in engine_containers.project_containers(stack_engine(), stack.project)
    )
    try:
        plan = plan_service(
            stack, action, service.name, own=_own(stack), exists=exists, proxy=_proxy(stack), insist=_flag("insist")
        )
    except StackpilotError as e:
        _refused(f"service.{action}", service.name, e)
    args = list(plan.args)
    if timeout is not None:
        args[1:1] = ["-t", str(timeout)]
    return _start(stack, args, plan.title, f"service.{action}", service.name, services=[service.name])


def _since(name: str) -> float | None:
    value = _param(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}: seconds since the epoch or an RFC 3339 time.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@bp.get(STACK + "/services/<name>/logs")
def service_logs(name: str):
    """The last `tail` lines of the service's containers (both streams), as text or JSON lines."""
    _row(name)
    stack = _stack()
    tail = _param("tail", "100")
    tail_n = None if tail == "all" else _int("tail", 100, 0, MAX_TAIL)
    since, until = _since("since"), _since("until")
    stamps = _flag("timestamps")
    as_json = _param("format", "") in ("json", "ndjson") or "application/x-ndjson" in request.headers.get("Accept", "")
    found = sorted(
        (c for c in engine_containers.project_containers(stack_engine(), stack.project) if c.service == name),
        key=lambda c: c.number,
    )
    if _flag("follow"):
        return _follow(found, tail_n, since, until, stamps, as_json)
    entries: list[tuple[str, str, str, str]] = []
    for c in found:
        stream = engine_logs.open_logs(
            stack_engine(), c.id, follow=False, tail=tail_n, since_ns=int(since * 1e9) if since else None
        )
        try:
            for kind, data in stream.messages():
                text = data.decode("utf-8", "replace").rstrip("\n")
                stamp, _, message = text.partition(" ")
                if until is not None:
                    try:
                        at = datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
                    except ValueError:
                        at = None
                    if at is not None and at > until:
                        continue
                entries.append((stamp, c.name, "stderr" if kind == engine_logs.STDERR else "stdout", message))
        finally:
            stream.close()
    entries.sort(key=lambda e: e[0])
    if tail_n is not None and len(found) > 1:
        entries = entries[-tail_n:] if tail_n else []
    if as_json:
        text = "".join(
            json.dumps({"time": s, "container": c, "stream": k, "message": m}) + "\n" for s, c, k, m in entries
        )
        return Response(text, mimetype="application/x-ndjson")
    text = "".join((f"{s} " if stamps else "") + m + "\n" for s, c, k, m in entries)
    return Response(text, mimetype="text/plain")


def _at(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return None


def _follow(found, tail_n, since, until, stamps: bool, as_json: bool) -> Response:
    """The streaming variant: one container's log (`container`: its number, default the first) as
    it grows, until `until`, `max_seconds`, the container ends or the client leaves. Each open stream holds one of
    the user's log shares (the same budget as the log viewer's sockets; 429 when none is free)."""
    number = _int("container", None, 1, 10000)
    chosen = [c for c in found if number is None or c.number == number]
    if not chosen:
        raise NotFound("No such container of this service (it has none yet, or not that number).")
    container = chosen[0]
    # A client that leaves is only noticed at the next line written; a quiet container would hold the
    # share and a thread forever, so every stream ends after max_seconds (reconnect with since=).
    limit = _int("max_seconds", 300, 1, 3600)
    share = current_app.extensions["stackpilot.shares"].take("logs", g.user.username)
    try:
        stream = engine_logs.open_logs(
            stack_engine(), container.id, follow=True, tail=tail_n, since_ns=int(since * 1e9) if since else None
        )
    except BaseException:
        share.release()
        raise

    watchdog = threading.Timer(limit, stream.close)
    watchdog.daemon = True

    def lines():
        watchdog.start()
        with share:
            try:
                for kind, data in stream.messages():
                    stamp, _, message = data.decode("utf-8", "replace").rstrip("\n").partition(" ")
                    if until is not None and (at := _at(stamp)) is not None and at > until:
                        return
                    if as_json:
                        yield (
                            json.dumps(
                                {
                                    "time": stamp,
                                    "container": container.name,
                                    "stream": "stderr" if kind == engine_logs.STDERR else "stdout",
                                    "message": message,
                                }
                            )
                            + "\n"
                        )
                    else:
                        yield (f"{stamp} " if stamps else "") + message + "\n"
            except StackpilotError:  # closed by the watchdog mid-read: the stream simply ends
                return
            finally:
                watchdog.cancel()
                stream.close()

    response = Response(lines(), mimetype="application/x-ndjson" if as_json else "text/plain")
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get(STACK + "/services/<name>/stats")
def service_stats(name: str):
    row = _row(name)
    now = time.time()
    return jsonify(
        {
            "name": row.name,
            "cpu_percent": round(row.cpu, 2) if row.cpu is not None else None,
            "memory_bytes": row.mem_used,
            "memory_limit_bytes": row.mem_limit or None,
            "sampled_at": _iso(row.sample_at),
            "sample_age_seconds": round(now - row.sample_at, 2) if row.sample_at else None,
        }
    )


# -- groups -----------------------------------------------------------------------------------------------
def _groups() -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in _snapshot().rows:
        groups.setdefault(row.group or DEFAULT_GROUP, []).append(row)
    return groups


def dependency_order(rows: list[Row]) -> list[str]:
    """Names with each service after the services it depends on (within the list), stable by name."""
    names = {r.name for r in rows}
    deps = {r.name: [d for d in r.depends_on if d in names] for r in rows}
    done: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple) -> None:
        if name in seen or name in path:
            return
        for d in sorted(deps[name]):
            visit(d, (*path, name))
        seen.add(name)
        done.append(name)

    for name in sorted(names):
        visit(name, ())
    return done


def _group_json(name: str, rows: list[Row], now: float) -> dict:
    order = dependency_order(rows)
    by_name = {r.name: r for r in rows}
    return {
        "name": name,
        "services": [row_json(by_name[n], now) for n in order],
        "running": sum(1 for r in rows if r.state in ("running", "healthy")),
        "total": len(rows),
        "start_order": order,
        "stop_order": list(reversed(order)),
    }


@bp.get(STACK + "/groups")
def groups():
    now = time.time()
    return jsonify(
        {
            "groups": [
                {k: v for k, v in _group_json(n, rows, now).items() if k != "services"}
                for n, rows in sorted(_groups().items())
            ]
        }
    )


def _group(name: str) -> list[Row]:
    _stack()
    found = _groups().get(name)
    if not found:
        raise NotFound(f"No group named {name!r} (groups come from the stackpilot.group label, else profiles).")
    return found


@bp.get(STACK + "/groups/<name>")
def group(name: str):
    return jsonify(_group_json(name, _group(name), time.time()))


@bp.post(STACK + "/groups/<name>/<action>")
@require_role("operator")
def group_action(name: str, action: str):
    """Start (dependencies first) or stop (dependents first) every service of a group in one Compose run."""
    if action not in ("start", "stop"):
        raise NotFound(f"No group action {action!r}: start or stop.")
    stack = _stack()
    rows = [r for r in _group(name) if r.active]
    if not rows:
        raise InvalidInput(f"Group {name!r} has no service in the active profiles.")
    order = dependency_order(rows)
    own = _own(stack)
    target = f"group {name}"
    try:
        names = others(order, own) if own else order
        if action == "stop":
            names = list(reversed(names))
            proxy = _proxy(stack)
            if proxy in names and not _flag("insist"):
                names = [n for n in names if n != proxy]
                if not names:
                    raise InvalidInput(f"{proxy} is the proxy you reach Stackpilot through; nothing else to stop.")
            timeout = _int("timeout", None, 0, engine_containers.MAX_STOP_TIMEOUT)
            args = ["stop", *(["-t", str(timeout)] if timeout is not None else []), *names_arg(names)]
        else:
            args = ["up", "-d", *names_arg(names)]
    except StackpilotError as e:
        _refused(f"group.{action}", target, e)
    return _start(
        stack,
        args,
        f"{action} group {name}",
        f"group.{action}",
        target,
        f"services: {', '.join(names)}",
        services=names,
        order=names,
    )
