"""The current request's user, stack, engine, Compose runner and store rows — per request, never a
process global.

Per-stack pages live under `/s/<stack>/...`; the old un-prefixed paths (`/services`, `/logs/...`,
`/config/...`, `/setup/...`, `/graph/...`) serve the default stack in place (same endpoints: their
rules carry `stack="-"` as a default). A URL value preprocessor takes `stack` out of the view
arguments, a before-request hook (after the session gate) resolves it and checks that the signed-in
user may see it (404 otherwise: a limited viewer learns nothing about other stacks), and a URL
default puts it back into every `url_for`, so templates and views need no stack argument.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask import abort
from flask import current_app
from flask import g
from flask import has_request_context
from flask import redirect
from flask import request
from flask import url_for
from werkzeug.routing import Rule

from app import compose
from app.engine import Engine
from app.engine.registry import EngineRegistry
from app.engine.self import own_project
from app.errors import StackpilotError
from app.settings import Settings
from app.stack import Stack
from app.stack import identity
from app.stack.registry import StackEntry
from app.stack.registry import StackRegistry
from app.stack.registry import files_reachable
from app.store import Store
from app.store import User

LEGACY = "-"  # the `stack` value of the un-prefixed paths: "the default stack" ("-" starts no slug)
PREFIX = "/s/<stack>"


# -- the app's parts -----------------------------------------------------------------------------------
def store() -> Store:
    return current_app.extensions["stackpilot.store"]


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def engines() -> EngineRegistry:
    return current_app.extensions["stackpilot.engines"]


def registry() -> StackRegistry:
    return current_app.extensions["stackpilot.stacks"]


def runners() -> compose.Runners:
    return current_app.extensions["stackpilot.runners"]


def current_user() -> User | None:
    return g.get("user")


# -- the current stack ---------------------------------------------------------------------------------
def current_entry() -> StackEntry | None:
    """The registry entry of this request's stack; on a page outside any stack (or outside a
    request) the default stack, as before there were many."""
    if "stack_slug" in g:
        return g.get("stack_entry")
    if "default_entry" not in g:
        g.default_entry = registry().default()
    return g.default_entry


def url_entry() -> StackEntry | None:
    """The stack named by this request's URL only (None on the home page, users page, ...)."""
    return g.get("stack_entry")


def settings_key(entry: StackEntry | None = None) -> str:
    """Where a stack's own settings (project, files, profiles) live in the store."""
    entry = entry or current_entry()
    return "stack" if entry is None or entry.source == "env" else f"stack:{entry.slug}"


def stack_settings(entry: StackEntry | None = None) -> dict:
    """The stack's own saved settings row (project, files, profiles), {} when none."""
    return dict(store().get_setting(settings_key(entry)) or {})


def stack_of(entry: StackEntry) -> Stack:
    """The Stack Compose acts on for an entry, with its saved settings. The default stack keeps
    its rule (app.stack.identity): saved name, our own container's project, Compose's choice."""
    saved = stack_settings(entry)
    if entry.source == "env" and not saved.get("project") and entry.path is not None:
        try:
            own = own_project(engines().get(entry.engine), settings().self_container_id)
        except StackpilotError:
            own = None
        saved["project"] = identity.project_name(runners(), entry.path, saved, store(), own)
    return entry.stack(saved)


def current_stack() -> Stack | None:
    """This request's stack, or None when there is none (no default stack on an old path)."""
    if "stack_obj" not in g:
        entry = current_entry()
        g.stack_obj = stack_of(entry) if entry is not None else None
    return g.stack_obj


def stack_engine() -> Engine:
    """The engine of this request's stack (the local engine when there is no stack)."""
    entry = current_entry()
    return engines().get(entry.engine if entry is not None else None)


def stack_runner() -> compose.ComposeRunner | None:
    stack = current_stack()
    return runners().for_stack(stack) if stack is not None else None


# -- who may see which stack ---------------------------------------------------------------------------
def may_see(user: User | None, slug: str) -> bool:
    """Admins see every stack; others every stack unless limited to chosen ones."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    if "stack_limits" not in g:
        g.stack_limits = registry().allowed(user.id)
    allowed = g.stack_limits
    return allowed is None or slug in allowed


def visible_entries() -> list[StackEntry]:
    user = current_user()
    return [e for e in registry().all() if may_see(user, e.slug)]


# -- wiring ---------------------------------------------------------------------------------------------
def _pull_stack(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values and "stack" in values:
        g.stack_slug = values.pop("stack")


def _resolve() -> Any:
    """After the session gate: find the stack of a per-stack URL, or 404 (unknown, or hidden
    from this user, for pages, fragments, sockets and POSTs alike)."""
    slug = g.get("stack_slug")
    if slug is None:
        return None
    reg = registry()
    if slug == LEGACY:
        entry = reg.default()
    else:
        entry = reg.get(slug)
        if entry is None:
            abort(404)
    user = current_user()
    if entry is not None and user is not None and not may_see(user, entry.slug):
        abort(404)
    g.stack_entry = entry
    if (
        entry is not None
        and request.method == "GET"
        and request.endpoint == "services.index"
        and "stackhome.containers" in current_app.view_functions
        and not files_reachable(current_stack())
    ):
        # Files not reachable here: the containers-only view of the stack says what to add.
        return redirect(url_for("stackhome.containers", stack=slug))
    return None


def _add_stack(endpoint: str, values: dict[str, Any]) -> None:
    if "stack" in values or endpoint not in current_app.extensions.get("stackpilot.stack_endpoints", ()):
        return
    values["stack"] = g.get("stack_slug", LEGACY) if has_request_context() else LEGACY


def _audit_stack(app: Flask):
    """The audit row's stack: the request's, else the stack of the Compose run finishing here."""

    def stack_name() -> str:
        if has_request_context():
            entry = g.get("stack_entry")
            return entry.slug if entry is not None else ""
        key = compose.running_for()
        if not key:
            return ""
        engine_id, _, project = key.partition("/")
        reg: StackRegistry = app.extensions["stackpilot.stacks"]
        found = reg.find(engine_id, project)
        if found is not None:
            return found.slug
        default = reg.default()
        return default.slug if default is not None and default.engine == engine_id else project

    return stack_name


class LazyBuildRule(Rule):
    """A URL rule that writes its URL builder on the first url_for that needs it, not when added.

    werkzeug generates and compiles Python code for two builders per rule as it is added: with
    ~170 rules (each per-stack page twice) that was a quarter of create_app. Matching a request
    does not use them, and a page builds a few dozen endpoints; the other builder (without
    unknown arguments as a query string) url_for never asks for."""

    def _compile_builder(self, append_unknown: bool = True):
        attribute = "_build_unknown" if append_unknown else "_build"

        def build_on_first_use(rule: Rule, **values: Any):
            builder = Rule._compile_builder(rule, append_unknown).__get__(rule, None)
            setattr(rule, attribute, builder)  # two threads racing write the same builder
            return builder(**values)

        return build_on_first_use


def register_stack_blueprints(app: Flask, blueprints, legacy: bool = True) -> None:
    """Serve each blueprint under /s/<stack>/ and (legacy=True) at its old path for the default
    stack, with the same endpoint names (the old rules carry stack="-" as a default)."""
    endpoints: set[str] = app.extensions.setdefault("stackpilot.stack_endpoints", set())
    for bp in blueprints:
        app.register_blueprint(bp, url_prefix=PREFIX + (bp.url_prefix or ""))
    # Their rules are the ones with their endpoints ("name.view", nested "name.child.view"): one
    # pass over the map (each look at it re-sorts the matcher) instead of one before and after each.
    names = tuple(f"{bp.name}." for bp in blueprints)
    for rule in list(app.url_map.iter_rules()):
        if rule.endpoint.startswith(names):
            endpoints.add(rule.endpoint)
            path = rule.rule[len(PREFIX) :]
            if not legacy or not rule.rule.startswith(PREFIX) or path in ("", "/"):
                continue  # "/" is the home page now; the stack's root is /s/<stack>/
            app.url_map.add(
                app.url_rule_class(
                    path,
                    endpoint=rule.endpoint,
                    methods=rule.methods,
                    defaults={**(rule.defaults or {}), "stack": LEGACY},
                    websocket=rule.websocket,
                    strict_slashes=rule.strict_slashes,
                )
            )


def init_app(app: Flask) -> None:
    """Call after security.init_app: the stack is resolved after the session is known."""
    app.url_rule_class = LazyBuildRule
    app.url_value_preprocessor(_pull_stack)
    app.before_request(_resolve)
    app.url_defaults(_add_stack)
    app.extensions["stackpilot.store"].audit_stack = _audit_stack(app)

    @app.context_processor
    def _stack_globals() -> dict[str, Any]:
        def switcher() -> list[StackEntry]:
            if "switcher" not in g:
                try:
                    g.switcher = visible_entries() if current_user() is not None else []
                except Exception:  # the header must render even if the registry cannot be read
                    g.switcher = []
            return g.switcher

        return {"current_entry": url_entry(), "stack_switcher": switcher}
