"""Service and stack actions, and the live progress panel of the Compose run behind each.

Every action is a POST (CSRF checked globally) for operators; the service name is checked
against the compose model before anything runs, so only names Compose itself defined reach a
command line. The run streams into an in-memory log that the panel polls (286 when finished);
the audit row is written when the run ends, with its exit code.

When Stackpilot runs as a service of the stack it manages (the README's `include:` install), no
run may stop or replace that service: Compose would kill the very process running it and the UI
would never come back. So stop/restart/recreate of our service are refused (OwnContainer, with the
host command to use instead), and stack actions name every OTHER service: `down` becomes
`rm -f -s [-v] <others>` (networks and our container kept), `restart` restarts the others, `up`
is `up -d --no-deps <others>` (--no-deps: a service depending on ours must not pull it into the
run, where a changed config would recreate it). `rm -v` deletes anonymous volumes only: named
volumes are kept while Stackpilot runs in the stack (the panel title and the audit say so);
deleting them needs `docker compose down -v` on the host.
"""

from __future__ import annotations

import logging

from flask import abort
from flask import g
from flask import render_template
from flask import request

from app import compose
from app.engine import containers as engine_containers
from app.engine.self import own_service
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import OwnContainer
from app.errors import StackBusy
from app.errors import StackpilotError
from app.stack.model import load_model
from app.web import current_stack
from app.web import engine
from app.web import settings
from app.web import store
from app.web.security import require_role
from app.web.services import bp

log = logging.getLogger(__name__)

SERVICE_ACTIONS = ("start", "stop", "restart", "recreate", "pull")
STACK_ACTIONS = ("up", "down", "pull", "restart", "recreate")
SELF_REFUSED = ("stop", "restart", "recreate")  # per-service actions that would kill us
HOST_COMMANDS = {"stop": "stop", "restart": "restart", "recreate": "up -d --force-recreate"}


def _stack():
    stack = current_stack()
    if stack is None:
        raise NotFound("No stack is configured (STACKPILOT_STACK_DIR is not set).")
    return stack


def _own(stack) -> str | None:
    """Our own service in this stack (None when Stackpilot is not one of its containers)."""
    return own_service(engine(), stack.project, settings().self_container_id)


def own_container_error(stack, name: str, action: str) -> OwnContainer:
    command = f"docker compose -p {stack.project} {HOST_COMMANDS[action]} {name}"
    return OwnContainer(
        f"Stackpilot cannot stop or recreate its own container from inside; run `{command}` "
        f"on the host (in {stack.directory}).")


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


def _others(model, own: str) -> list[str]:
    """Every active service but ours; refused when ours is the only one (an empty list would
    make Compose act on all services, ours included)."""
    names = [n for n in model.service_names() if n != own]
    if not names:
        raise InvalidInput(f"{own} (Stackpilot itself) is the only service of this stack; "
                           "manage it from the host.")
    return names


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
        run = compose.start(stack, args, title=title, user=user,
                            on_done=_audit_when_done(action, target, detail))
    except StackBusy:
        store().audit(user, action, target, "refused: busy", detail)
        raise
    lines, after = run.lines_since(0)
    return render_template("services/_progress.html", run=run, lines=lines, after=after), 200, {
        "HX-Trigger": "services-changed"}


def service_args(stack, name: str, action: str) -> list[str]:
    """The Compose arguments for a per-service action on a name already checked against the model."""
    if action == "start":
        exists = any(c.service == name for c in engine_containers.project_containers(engine(), stack.project))
        return ["start", name] if exists else ["up", "-d", name]
    return {
        "stop": ["stop", name],
        "restart": ["restart", name],
        "recreate": ["up", "-d", "--force-recreate", "--no-deps", name],
        "pull": ["pull", name],
    }[action]


@bp.post("/services/<path:name>/<action>")
@require_role("operator")
def service_action(name: str, action: str):
    if action not in SERVICE_ACTIONS:
        abort(404)
    stack = _stack()
    service = load_model(stack).require(name, active=True)
    if action in SELF_REFUSED and service.name == _own(stack):
        store().audit(g.user.username, f"service.{action}", service.name, "refused: own container")
        raise own_container_error(stack, service.name, action)
    args = service_args(stack, service.name, action)
    return _start(stack, args, f"{action} {service.name}", f"service.{action}", service.name)


@bp.post("/stack/<action>")
@require_role("operator")
def stack_action(action: str):
    if action not in STACK_ACTIONS:
        abort(404)
    stack = _stack()
    model = load_model(stack)
    own = _own(stack)
    detail = ""
    note = ""
    if action == "up":
        chosen = request.form.getlist("profile")
        unknown = [p for p in chosen if p not in model.profiles]
        if unknown:
            raise InvalidInput("Choose profiles this stack defines.")
        if "profiles" in request.form or chosen:
            stack = stack.with_changes(profiles=tuple(chosen))
        detail = f"profiles: {', '.join(stack.profiles) or 'none'}"
        args = ["up", "-d"]
        if own:
            args += ["--no-deps", *_others(load_model(stack), own)]
            note = f"{own} (Stackpilot) left as it is"
    elif action == "down":
        delete = request.form.get("volumes") == "delete"
        if own:
            args = ["rm", "-f", "-s", *(["-v"] if delete else []), *_others(model, own)]
            note = (f"{own} (Stackpilot), the networks and named volumes kept" if delete
                    else f"{own} (Stackpilot) and the networks kept")
            detail = ("anonymous volumes deleted; named volumes kept while Stackpilot runs in the stack: "
                      f"{', '.join(model.volumes.values()) or 'none'}") if delete else "volumes kept"
        else:
            args = ["down", *(["-v"] if delete else [])]
            if delete:
                detail = f"deleted volumes: {', '.join(model.volumes.values()) or 'none'}"
            else:
                detail = "volumes kept"
    elif action == "recreate":
        # Several services in one Compose run (e.g. all that use a changed .env variable).
        names = [model.require(n, active=True).name for n in request.form.getlist("service")]
        if not names:
            raise InvalidInput("Choose the services to recreate.")
        if own in names:
            names = [n for n in names if n != own]
            if not names:
                store().audit(g.user.username, "stack.recreate", stack.project, "refused: own container")
                raise own_container_error(stack, own, "recreate")
            note = f"{own} (Stackpilot) skipped: recreate it from the host"
        args = ["up", "-d", "--force-recreate", "--no-deps", *names]
        detail = f"services: {', '.join(names)}"
    elif action == "restart" and own:
        args = ["restart", *_others(model, own)]
        note = f"{own} (Stackpilot) not restarted"
    else:
        args = [action]
    if note:
        detail = f"{detail}; {note}" if detail else note
    title = f"{action} {stack.project}" + (" (with volumes)" if "-v" in args and not own else "")
    if note:
        title += f" ({note})"
    return _start(stack, args, title, f"stack.{action}", stack.project, detail)


@bp.get("/stack/runs/<run_id>")
def run_lines(run_id: str):
    """New output of a run after line `after`; 286 (stop polling) once it has finished."""
    run = compose.get_run(run_id)
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
def run_panel(run_id: str):
    """The whole panel of a run (to reopen it from the list of recent actions)."""
    run = compose.get_run(run_id)
    if run is None:
        abort(404)
    lines, after = run.lines_since(0)
    return render_template("services/_progress.html", run=run, lines=lines, after=after)

