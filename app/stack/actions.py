"""Action planning: which Compose arguments a requested action runs (no Flask, no Docker).

Why a domain module: the service table, the wizard's launch and any API must agree on two rules
that, broken, either kill the UI or let a name become a flag.

1. Names go after ``--``. A service name reaches the command line only after the model vouched
   for it, but Compose allows names such as ``--remove-orphans`` (a valid YAML key); without the
   separator `start --remove-orphans` would be a different command.
2. Stackpilot's own service is left alone. When Stackpilot runs as a service of the stack it
   manages (the README's ``include:`` install), no run may stop or replace that service: Compose
   would kill the process that runs Compose, half way, and the UI would never come back. So
   per-service stop/restart/recreate of our service are refused (OwnContainer, naming the host
   command), and stack actions name every OTHER service: ``down`` becomes ``rm -f -s [-v] --
   <others>`` (networks and our container kept), ``restart`` restarts the others, ``up`` is ``up
   -d --no-deps -- <others>`` (--no-deps: a service depending on ours must not pull ours into the
   run, where a changed config would recreate it). ``rm -v`` deletes anonymous volumes only:
   named volumes are kept while Stackpilot runs in the stack.

API:
- ``plan_service(stack, action, name, own=None, exists=True) -> ActionPlan``
- ``plan_stack(stack, action, model, own=None, delete_volumes=False, services=()) -> ActionPlan``
- ``plan_up(services, own=None, base=("up", "-d")) -> ActionPlan``: the launch's start (the wizard
  passes the services of its model and its own UP_ARGS).
- ``proxy``/``insist`` (issue 13): the service proxying Stackpilot (app/stack/proxy.py) is the way
  in: stack down/restart/recreate leave it running, and a per-service stop/restart/recreate of it is
  refused with ProxyAtRisk (saying how long the page goes away) unless the person insists.
- ``ActionPlan``: ``args`` (empty: nothing to run), ``note`` (what was left alone), ``detail``
  (for the audit row), ``title``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import InvalidInput
from app.errors import OwnContainer
from app.stack import Stack
from app.stack.model import ComposeModel

SERVICE_ACTIONS = ("start", "stop", "restart", "recreate", "pull")
STACK_ACTIONS = ("up", "down", "pull", "restart", "recreate")
SELF_REFUSED = ("stop", "restart", "recreate")  # per-service actions that would kill us
HOST_COMMANDS = {"stop": "stop", "restart": "restart", "recreate": "up -d --force-recreate"}


# Seconds a proxy restart/recreate takes the page away (Caddy starts in about a second; the rest is
# the engine stopping the old container), said before the person insists.
DOWNTIME_SECONDS = 10


class ProxyAtRisk(OwnContainer):
    """An action would take down the proxy Stackpilot is reached through; allowed when insisted."""

    def __init__(self, message: str, downtime: int | None) -> None:
        super().__init__(message)
        self.downtime = downtime  # seconds the page is gone; None: until someone starts it on the host


def proxy_error(stack: Stack, name: str, action: str) -> ProxyAtRisk:
    """What happens to this page if the proxy goes, said before it goes."""
    if action == "stop":
        return ProxyAtRisk(
            f"{name} is the proxy you reach Stackpilot through: stopping it takes this page away until "
            f"someone runs `docker compose -p {stack.project} up -d -- {name}` on the host. Confirm to stop it "
            "anyway.",
            None,
        )
    return ProxyAtRisk(
        f"{name} is the proxy you reach Stackpilot through: {action} takes this page away for about "
        f"{DOWNTIME_SECONDS} s; it reconnects by itself. Confirm to {action} it anyway.",
        DOWNTIME_SECONDS,
    )


@dataclass(frozen=True)
class ActionPlan:
    """What to run and what to tell: args for the stack's runner, a note naming what was spared."""

    args: tuple[str, ...]
    title: str
    note: str = ""
    detail: str = ""
    steps: tuple[tuple[str, ...], ...] = ()  # several Compose runs in one (build, then up); args is the first


def names_arg(names: Iterable[str]) -> list[str]:
    """``--`` then the names: a name never becomes a flag, whatever it looks like."""
    names = list(names)
    return ["--", *names] if names else []


def own_container_error(stack: Stack, name: str, action: str) -> OwnContainer:
    """The refusal for an action on our own service, with the host command that does it."""
    command = f"docker compose -p {stack.project} {HOST_COMMANDS.get(action, action)} -- {name}"
    return OwnContainer(
        f"Stackpilot cannot stop or recreate its own container from inside; run `{command}` "
        f"on the host (in {stack.directory})."
    )


def others(names: Iterable[str], own: str) -> list[str]:
    """Every name but ours; refused when ours is the only one (an empty list would make Compose
    act on all services, ours included)."""
    rest = [n for n in names if n != own]
    if not rest:
        raise InvalidInput(f"{own} (Stackpilot itself) is the only service of this stack; manage it from the host.")
    return rest


def plan_service(
    stack: Stack,
    action: str,
    name: str,
    own: str | None = None,
    exists: bool = True,
    proxy: str | None = None,
    insist: bool = False,
) -> ActionPlan:
    """One service's action; `name` already checked against the model, `exists`: it has a
    container (start then means `start`, else `up -d` creates it)."""
    if action not in SERVICE_ACTIONS:
        raise InvalidInput(f"Unknown action {action!r}.")
    if action in SELF_REFUSED and own is not None and name == own:
        raise own_container_error(stack, name, action)
    if action in SELF_REFUSED and proxy and name == proxy and not insist:
        raise proxy_error(stack, name, action)
    if action == "start":
        args = ["start", *names_arg([name])] if exists else ["up", "-d", *names_arg([name])]
    elif action == "recreate":
        args = ["up", "-d", "--force-recreate", "--no-deps", *names_arg([name])]
    else:
        args = [action, *names_arg([name])]
    return ActionPlan(args=tuple(args), title=f"{action} {name}")


def plan_up(services: Sequence[str], own: str | None = None, base: Sequence[str] = ("up", "-d")) -> ActionPlan:
    """Start the stack; with our own service among them, start every other one (--no-deps) and
    leave ours as it is. No other service at all: nothing to run (args empty)."""
    if not own:
        return ActionPlan(args=tuple(base), title="up")
    rest = [n for n in services if n != own]
    note = f"{own} (Stackpilot) left as it is"
    if not rest:
        return ActionPlan(args=(), title="up", note=note)
    flags = [a for a in base if a != "--remove-orphans"]  # orphans removal could take ours
    return ActionPlan(args=(*flags, "--no-deps", *names_arg(rest)), title="up", note=note)


def plan_stack(
    stack: Stack,
    action: str,
    model: ComposeModel,
    own: str | None = None,
    delete_volumes: bool = False,
    services: Sequence[str] = (),
    proxy: str | None = None,
    insist: bool = False,
) -> ActionPlan:
    """A stack action; `model` is the model of the run's profiles, `services` the names (already
    checked against the model) for ``recreate``; `proxy` is left running unless `insist`."""
    if action not in STACK_ACTIONS:
        raise InvalidInput(f"Unknown action {action!r}.")
    detail = note = ""
    kept = proxy if proxy and proxy != own and not insist and proxy in model.service_names() else None
    if kept and action in ("down", "restart"):
        spared = {n for n in (own, kept) if n}
        names = [n for n in model.service_names() if n not in spared]
        if not names:
            raise InvalidInput(f"{kept} is the proxy you reach Stackpilot through; nothing else to {action}.")
        keep = f"{kept} (the proxy you reach Stackpilot through)" + (f" and {own} (Stackpilot)" if own else "")
        if action == "down":
            args = ["rm", "-f", "-s", *(["-v"] if delete_volumes else []), *names_arg(names)]
            note = f"{keep} kept running, with the networks" + (" and named volumes" if delete_volumes else "")
            detail = "anonymous volumes deleted; named volumes kept" if delete_volumes else "volumes kept"
        else:
            args = ["restart", *names_arg(names)]
            note = f"{keep} not restarted"
        detail = f"{detail}; {note}" if detail else note
        return ActionPlan(args=tuple(args), title=f"{action} {stack.project} ({note})", note=note, detail=detail)
    if kept and action == "recreate" and kept in services:
        services = [n for n in services if n != kept]
        if not services:
            raise proxy_error(stack, kept, "recreate")
        note = f"{kept} (the proxy you reach Stackpilot through) skipped: recreate it alone to confirm"
    if action == "up":
        planned = plan_up(model.service_names(), own)
        if own:
            others(model.service_names(), own)
        args, note = list(planned.args), planned.note
        detail = f"profiles: {', '.join(stack.profiles) or 'none'}"
    elif action == "down":
        if own:
            args = [
                "rm",
                "-f",
                "-s",
                *(["-v"] if delete_volumes else []),
                *names_arg(others(model.service_names(), own)),
            ]
            note = (
                f"{own} (Stackpilot), the networks and named volumes kept"
                if delete_volumes
                else f"{own} (Stackpilot) and the networks kept"
            )
            detail = (
                (
                    "anonymous volumes deleted; named volumes kept while Stackpilot runs in the stack: "
                    f"{', '.join(model.volumes.values()) or 'none'}"
                )
                if delete_volumes
                else "volumes kept"
            )
        else:
            args = ["down", *(["-v"] if delete_volumes else [])]
            detail = (
                f"deleted volumes: {', '.join(model.volumes.values()) or 'none'}" if delete_volumes else "volumes kept"
            )
    elif action == "recreate":
        names = list(services)
        if not names:
            raise InvalidInput("Choose the services to recreate.")
        if own in names:
            names = [n for n in names if n != own]
            if not names:
                raise own_container_error(stack, own, "recreate")
            note = f"{note}; " * bool(note) + f"{own} (Stackpilot) skipped: recreate it from the host"
        args = ["up", "-d", "--force-recreate", "--no-deps", *names_arg(names)]
        detail = f"services: {', '.join(names)}"
    elif action == "restart" and own:
        args = ["restart", *names_arg(others(model.service_names(), own))]
        note = f"{own} (Stackpilot) not restarted"
    else:
        args = [action]
    if note:
        detail = f"{detail}; {note}" if detail else note
    title = f"{action} {stack.project}" + (" (with volumes)" if "-v" in args and not own else "")
    if note:
        title += f" ({note})"
    return ActionPlan(args=tuple(args), title=title, note=note, detail=detail)


# Issue 14: build. `build` builds images only (the running containers stay); `rebuild` builds then
# recreates the service with the new image; `upbuild` is the stack's `up -d --build`. A failed build
# stops the sequence, so the running container is never replaced by nothing.
BUILD_SERVICE_ACTIONS = ("build", "rebuild")
BUILD_STACK_ACTIONS = ("build", "upbuild")


def build_flags(pull: bool = False, no_cache: bool = False) -> list[str]:
    return [*(["--pull"] if pull else []), *(["--no-cache"] if no_cache else [])]


def plan_build(
    stack: Stack,
    action: str,
    names: Sequence[str],
    own: str | None = None,
    pull: bool = False,
    no_cache: bool = False,
    every: Sequence[str] = (),
) -> ActionPlan:
    """Build (and recreate) services with `build:`. `names`: the built services asked for (checked
    against the model); `every`: all services of the run's profiles, for ``upbuild`` with ours spared."""
    flags = build_flags(pull, no_cache)
    options = ", ".join(o for o, on in (("pull base images", pull), ("no cache", no_cache)) if on)
    detail = f"services: {', '.join(names) or 'all built'}" + (f"; {options}" if options else "")
    if action == "build":
        step = ("build", *flags, *names_arg(names))
        return ActionPlan(args=step, steps=(step,), title=f"build {' '.join(names) or stack.project}", detail=detail)
    if action == "rebuild":
        if not names:
            raise InvalidInput("Choose the service to rebuild.")
        if own is not None and own in names:
            raise own_container_error(stack, own, "recreate")
        build = ("build", *flags, *names_arg(names))
        up = ("up", "-d", "--no-deps", *names_arg(names))
        return ActionPlan(args=build, steps=(build, up), title=f"rebuild & recreate {' '.join(names)}", detail=detail)
    if action == "upbuild":
        planned = plan_up(list(every), own, base=("up", "-d") if flags else ("up", "-d", "--build"))
        if own:
            others(every, own)
        steps = ((("build", *flags),) if flags else ()) + ((planned.args,) if planned.args else ())
        title = f"up with build {stack.project}" + (f" ({planned.note})" if planned.note else "")
        return ActionPlan(args=steps[0], steps=steps, title=title, note=planned.note, detail=detail)
    raise InvalidInput(f"Unknown action {action!r}.")
