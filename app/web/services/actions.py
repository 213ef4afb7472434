"""Service and stack actions, and the live progress panel of the Compose run behind each.

Every action is a POST (CSRF checked globally) for operators; the service name is checked
against the compose model before anything runs, so only names Compose itself defined reach a
command line. The arguments come from app.stack.actions (names after `--`; Stackpilot's own
service left alone when it runs in the stack). The run streams into an in-memory log that the
panel polls (286 when finished); the audit row is written when the run ends, with its exit code.
"""

from __future__ import annotations

import logging
import os

from flask import abort
from flask import g
from flask import render_template
from flask import request

from app import compose
from app.engine import containers as engine_containers
from app.engine import images
from app.engine.self import own_container_id
from app.engine.self import own_service
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import OwnContainer
from app.errors import StackBusy
from app.errors import StackpilotError
from app.stack import updates
from app.stack.actions import BUILD_SERVICE_ACTIONS
from app.stack.actions import BUILD_STACK_ACTIONS
from app.stack.actions import SERVICE_ACTIONS
from app.stack.actions import STACK_ACTIONS
from app.stack.actions import ProxyAtRisk
from app.stack.actions import own_container_error
from app.stack.actions import plan_build
from app.stack.actions import plan_service
from app.stack.actions import plan_stack
from app.stack.model import load_model
from app.stack.proxy import proxy_service
from app.stack.updates import start_steps
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import settings
from app.web.context import stack_engine as engine
from app.web.context import stack_runner
from app.web.context import store
from app.web.security import require_role
from app.web.services import bp

log = logging.getLogger(__name__)


def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured (STACKPILOT_STACK_DIR is not set).")
    return stack


def _own(stack) -> str | None:
    """Our own service in this stack (None when Stackpilot is not one of its containers)."""
    return own_service(engine(), stack.project, settings().self_container_id)


def _proxy(stack) -> str | None:
    """The service proxying Stackpilot in this stack, kept running unless the person insists (issue 13)."""
    s = settings()
    return proxy_service(engine(), stack.project, own_container_id(s.self_container_id), s.trusted_proxies)


def _insisted(stack, risk: ProxyAtRisk, name: str, action: str, services: list[str]):
    """Say first that the page will go away (and for how long); the button re-posts with insist=1."""
    store().audit(g.user.username, action, name, "asked: proxy")
    return render_template(
        "https/_proxy_confirm.html",
        message=risk.message,
        name=name,
        services=services,
        verb=action.split(".")[-1],
        downtime=risk.downtime,
    )


def _progress(run):
    """The progress panel of a run just started; other regions refresh on `services-changed`."""
    lines, after = run.lines_since(0)
    return (
        render_template("services/_progress.html", run=run, lines=lines, after=after),
        200,
        {"HX-Trigger": "services-changed"},
    )


@bp.app_context_processor
def _own_service_context() -> dict:
    """`own_service()` for the row template: its menu disables what would kill us."""

    def lookup() -> str | None:
        if "own_service" not in g:
            stack = current_stack()
            try:
                g.own_service = _own(stack) if stack is not None else None
            except StackpilotError:  # a dead engine: the table shows that banner already
                g.own_service = None
        return g.own_service

    return {"own_service": lookup}


def _audit_when_done(action: str, target: str, detail: str = ""):
    """An on_done hook writing the audit row with the run's result (from the run's own thread)."""
    the_store = store()

    def done(run: compose.Run) -> None:
        result = "ok" if run.ok else ("timeout" if run.timed_out else f"failed (exit {run.exit_code})")
        the_store.audit(run.user, action, target, result, detail)

    return done


def _start(stack, args: list[str], title: str, action: str, target: str, detail: str = ""):
    user = g.user.username
    try:
        run = (
            runners()
            .for_stack(stack)
            .start(args, title=title, user=user, on_done=_audit_when_done(action, target, detail))
        )
    except StackBusy:
        store().audit(user, action, target, "refused: busy", detail)
        raise
    return _progress(run)


def _exists(stack, name: str) -> bool:
    return any(c.service == name for c in engine_containers.project_containers(engine(), stack.project))


@bp.post("/services/<path:name>/<action>")
@require_role("operator")
def service_action(name: str, action: str):
    if action not in SERVICE_ACTIONS:
        abort(404)
    stack = _stack()
    service = load_model(runners().for_stack(stack)).require(name, active=True)
    try:
        plan = plan_service(
            stack,
            action,
            service.name,
            own=_own(stack),
            exists=action != "start" or _exists(stack, service.name),
            proxy=_proxy(stack),
            insist=request.form.get("insist") == "1",
        )
    except ProxyAtRisk as risk:
        return _insisted(stack, risk, service.name, f"service.{action}", [])
    except OwnContainer:
        store().audit(g.user.username, f"service.{action}", service.name, "refused: own container")
        raise
    return _start(stack, list(plan.args), plan.title, f"service.{action}", service.name)


@bp.post("/stack/<action>")
@require_role("operator")
def stack_action(action: str):
    if action not in STACK_ACTIONS:
        abort(404)
    stack = _stack()
    model = load_model(runners().for_stack(stack))
    names: list[str] = []
    if action == "up":
        chosen = request.form.getlist("profile")
        if [p for p in chosen if p not in model.profiles]:
            raise InvalidInput("Choose profiles this stack defines.")
        if "profiles" in request.form or chosen:
            stack = stack.with_changes(profiles=tuple(chosen))
            model = load_model(runners().for_stack(stack))
    elif action == "recreate":
        # Several services in one Compose run (e.g. all that use a changed .env variable).
        names = [model.require(n, active=True).name for n in request.form.getlist("service")]
    try:
        plan = plan_stack(
            stack,
            action,
            model,
            own=_own(stack),
            delete_volumes=request.form.get("volumes") == "delete",
            services=names,
            proxy=_proxy(stack),
            insist=request.form.get("insist") == "1",
        )
    except ProxyAtRisk as risk:
        return _insisted(stack, risk, stack.project, f"stack.{action}", names)
    except OwnContainer:
        store().audit(g.user.username, f"stack.{action}", stack.project, "refused: own container")
        raise
    if action == "down" and request.form.get("volumes") == "delete":  # issue 15: back up first / typed names
        from app.web import backups as web_backups

        if request.form.get("backup_first") == "1":
            user, done = g.user.username, _audit_when_done(f"stack.{action}", stack.project, plan.detail)
            runner = runners().for_stack(stack)
            return web_backups.backup_then(
                plan.title, lambda: runner.start(list(plan.args), title=plan.title, user=user, on_done=done)
            )
        web_backups.guard_down_volumes(request.form.get("confirm_volumes", ""))
    return _start(stack, list(plan.args), plan.title, f"stack.{action}", stack.project, plan.detail)


@bp.get("/stack/runs/<run_id>")
@require_role("operator")  # Compose output can quote .env values
def run_lines(run_id: str):
    """New output of a run after line `after`; 286 (stop polling) once it has finished."""
    runner = stack_runner()  # only this stack's runs: another stack's output is not shown here
    run = runner.get_run(run_id) if runner is not None else None
    if run is None:
        abort(404)
    after = request.args.get("after", "0")
    after = int(after) if after.isascii() and after.isdigit() else 0
    done = run.done  # read before the lines, so no line is missed between the two
    lines, count = run.lines_since(after)
    html = render_template("services/_run_lines.html", run=run, lines=lines, after=count, done=done)
    headers = {"HX-Trigger": "services-changed"} if done else {}
    return html, 286 if done else 200, headers


@bp.get("/stack/runs/<run_id>/panel")
@require_role("operator")  # Compose output can quote .env values
def run_panel(run_id: str):
    """The whole panel of a run (to reopen it from the list of recent actions)."""
    runner = stack_runner()  # only this stack's runs: another stack's output is not shown here
    run = runner.get_run(run_id) if runner is not None else None
    if run is None:
        abort(404)
    lines, after = run.lines_since(0)
    return render_template("services/_progress.html", run=run, lines=lines, after=after)


# -- issue 14: build ---------------------------------------------------------------------------------
def _start_steps(stack, plan, action: str, target: str):
    """Several Compose steps in one run of the progress panel (app.stack.updates.start_steps)."""
    user = g.user.username
    try:
        run = start_steps(
            runners().for_stack(stack),
            plan.steps,
            plan.title,
            user,
            on_done=_audit_when_done(action, target, plan.detail),
        )
    except StackBusy:
        store().audit(user, action, target, "refused: busy", plan.detail)
        raise
    return _progress(run)


def _build_options() -> dict:
    return {"pull": request.form.get("pull") == "1", "no_cache": request.form.get("no_cache") == "1"}


@bp.post("/build/service/<path:name>/<action>")
@require_role("operator")
def service_build(name: str, action: str):
    """Build, or Rebuild & recreate, one service with `build:` (the running container stays if the build fails)."""
    if action not in BUILD_SERVICE_ACTIONS:
        abort(404)
    stack = _stack()
    service = load_model(runners().for_stack(stack)).require(name, active=True)
    if not service.build_context:
        raise InvalidInput(f"{service.name} has no build section: its image is pulled, not built here.")
    try:
        plan = plan_build(stack, action, [service.name], own=_own(stack), **_build_options())
    except OwnContainer:
        store().audit(g.user.username, f"service.{action}", service.name, "refused: own container")
        raise
    return _start_steps(stack, plan, f"service.{action}", service.name)


@bp.post("/build/stack/<action>")
@require_role("operator")
def stack_build(action: str):
    """Build all, or Up with build, for the stack's active profiles."""
    if action not in BUILD_STACK_ACTIONS:
        abort(404)
    stack = _stack()
    model = load_model(runners().for_stack(stack))
    built = [s.name for s in model.services.values() if s.active and s.build_context]
    if not built:
        raise InvalidInput("No service of this stack has a build section.")
    plan = plan_build(
        stack,
        action,
        [] if action == "build" else built,
        own=_own(stack),
        every=[s.name for s in model.services.values() if s.active],
        **_build_options(),
    )
    return _start_steps(stack, plan, f"stack.{action}", stack.project)


@bp.app_context_processor
def _build_context() -> dict:
    """`built_here(name)` for the row template: the Service when it has `build:` (its context and
    Dockerfile are shown, Build/Rebuild offered, Pull not), else None."""

    def lookup(name: str):
        if "built_services" not in g:
            stack = current_stack()
            try:
                model = load_model(runners().for_stack(stack)) if stack is not None else None
            except StackpilotError:
                model = None
            g.built_services = {s.name: s for s in model.services.values() if s.build_context} if model else {}
        return g.built_services.get(name)

    return {"built_here": lookup}


# -- issue 14: image updates -------------------------------------------------------------------------
def _stack_engine():
    from app.web.context import stack_engine

    return stack_engine()


@bp.post("/updates/check")
@require_role("operator")
def updates_check():
    """Start an update check in the background; its status polls /updates/status until it is done."""
    stack = _stack()
    started = updates.start_check(_stack_engine(), stack, load_model(runners().for_stack(stack)))
    store().audit(g.user.username, "stack.update-check", stack.project, "started" if started else "already running")
    return render_template("services/_updates_status.html", result=updates.cached(stack), poll=True)


def _update_run(stack, refs: dict[str, tuple[str, ...]], action: str, target: str, title: str):
    model = load_model(runners().for_stack(stack))
    own = _own(stack)
    if own and any(own in svcs for svcs in refs.values()):
        raise own_container_error(stack, own, "recreate")
    notes: dict[str, str] = {}
    steps = updates.update_steps(_stack_engine(), refs, model, notes)
    the_store = store()

    def done(run: compose.Run) -> None:
        """The audit row with the old and new digest of each image."""
        result = "ok" if run.ok else f"failed (exit {run.exit_code})"
        the_store.audit(run.user, action, target, result, "; ".join(notes.values()))
        if run.ok:
            updates.applied(stack, list(refs))

    user = g.user.username
    run = start_steps(runners().for_stack(stack), steps, title, user, on_done=done)
    return _progress(run)


@bp.post("/updates/service/<path:name>/<action>")
@require_role("operator")
def service_update(name: str, action: str):
    """Update (pull that image, recreate only the services on it) or Roll back one service's image."""
    if action not in ("update", "rollback"):
        abort(404)
    stack = _stack()
    service = load_model(runners().for_stack(stack)).require(name, active=True)
    refs = updates.pulled_refs(load_model(runners().for_stack(stack)))
    if service.image not in refs:
        raise InvalidInput(f"{service.name} is built here, not pulled: use Rebuild & recreate.")
    if images.split_ref(service.image)[2]:
        raise InvalidInput(f"{service.name} runs a pinned digest ({service.image}): change the compose file to update.")
    services = refs[service.image]
    if action == "update":
        return _update_run(stack, {service.image: services}, "service.update", service.name, f"update {service.image}")
    own = _own(stack)
    if own and own in services:
        raise own_container_error(stack, own, "recreate")
    steps = updates.rollback_steps(_stack_engine(), service.image, services, service.name)
    back_to = images.previous_tag(service.image, service.name)
    run = start_steps(
        runners().for_stack(stack),
        steps,
        f"roll back {service.image}",
        g.user.username,
        on_done=_audit_when_done("service.rollback", service.name, f"{service.image} -> {back_to}"),
    )
    return _progress(run)


@bp.post("/updates/stack/update-all")
@require_role("operator")
def stack_update_all():
    """Every image the last check found out of date, services recreated in dependency order."""
    stack = _stack()
    pending = {s.ref: s.services for s in updates.cached(stack).updates}
    if not pending:
        raise InvalidInput("No update is known: run a check first.")
    return _update_run(stack, pending, "stack.update-all", stack.project, f"update all {stack.project}")


@bp.app_context_processor
def _updates_context() -> dict:
    """`image_update(name)` for a row and `update_check()` for the stack: cached, never a registry call."""

    def result():
        if "update_result" not in g:
            stack = current_stack()
            g.update_result = updates.cached(stack) if stack is not None else updates.CheckResult()
            if stack is not None:
                try:
                    updates.check_if_due(_stack_engine(), stack, load_model(runners().for_stack(stack)), _interval())
                except StackpilotError:
                    pass
        return g.update_result

    return {"image_update": lambda name: result().for_service(name), "update_check": result}


def _interval() -> float:
    """STACKPILOT_UPDATE_CHECK_HOURS (0: checks only on demand); daily by default."""
    raw = os.environ.get("STACKPILOT_UPDATE_CHECK_HOURS", "")
    try:
        return float(raw) * 3600 if raw else updates.CHECK_INTERVAL
    except ValueError:
        return updates.CHECK_INTERVAL


@bp.get("/updates/status")
@require_role("viewer")
def updates_status():
    """The check's status; polled while it runs. A check someone started reloads the page once when
    done (to show the row badges); a scheduled one (quiet=1) only updates this status."""
    stack = _stack()
    result = updates.cached(stack)
    quiet = request.args.get("quiet") == "1"
    html = render_template("services/_updates_status.html", result=result, poll=not quiet)
    if result.running:
        return html, 200
    return (html, 286) if quiet else (html, 200, {"HX-Refresh": "true"})
