"""The home page (every stack on every engine) and the ways a stack is added; the containers-only
view of a stack whose files are not reachable; per-user stack limits (admin).

The overview costs one container listing per engine (run in parallel: a slow engine never holds
another's stacks), one read of the registry and one audit query — no Compose process, no inspect.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

from flask import Blueprint
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.engine import containers as engine_containers
from app.engine import projects as engine_projects
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import recipes
from app.stack.registry import ProjectSeen
from app.stack.registry import StackEntry
from app.stack.registry import check_folder
from app.stack.registry import files_reachable
from app.stack.registry import project_guess
from app.stack.registry import projects_from_containers
from app.web.context import current_entry
from app.web.context import current_stack
from app.web.context import engines
from app.web.context import may_see
from app.web.context import registry
from app.web.context import runners
from app.web.context import settings
from app.web.context import stack_engine
from app.web.context import stack_of
from app.web.context import store
from app.web.security import has_role
from app.web.security import require_role

log = logging.getLogger(__name__)

bp = Blueprint("home", __name__)
stack_bp = Blueprint("stackhome", __name__)

ENGINE_WAIT = 8.0  # the home page waits at most this long for an engine's listing


@dataclass
class EngineView:
    id: str
    name: str
    ok: bool = True
    reason: str = ""
    seen: dict[str, ProjectSeen] = field(default_factory=dict)


@dataclass
class Card:
    """One stack on the home page."""

    entry: StackEntry
    project: str
    engine: EngineView
    seen: ProjectSeen | None
    last: tuple | None = None
    busy: str | None = None
    reachable: bool = True

    @property
    def states(self) -> dict[str, int]:
        return self.seen.states if self.seen else {}

    @property
    def problems(self) -> list[str]:
        return self.seen.problems if self.seen else []


def _listing(engine) -> EngineView:
    view = EngineView(engine.id if hasattr(engine, "id") else "local", getattr(engine, "name", "This machine"))
    try:
        view.seen = projects_from_containers(engine_projects.compose_containers(engine))
    except StackpilotError as e:
        view.ok, view.reason = False, e.message
    return view


def engine_views(pool: ThreadPoolExecutor) -> dict[str, Future]:
    """Every engine's compose projects, listed in parallel (one call each), as futures."""
    reg = engines()
    all_engines = reg.all() if hasattr(reg, "all") else [reg.get(i) for i in reg.ids()]
    return {engine.id: pool.submit(_listing, engine) for engine in all_engines}


def _view(engine_id: str, future: Future) -> EngineView:
    try:
        return future.result(timeout=ENGINE_WAIT)
    except Exception:  # a wedged engine: its stacks say so, the others render
        return EngineView(engine_id, engine_id, ok=False, reason="did not answer in time")


def overview() -> tuple[list[Card], dict[str, EngineView]]:
    """Feed the registry (root folder, engines' projects) and build the cards the user may see.
    The engines are listed in threads while the registry and the store are read here."""
    reg = registry()
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="home-list")
    try:
        futures = engine_views(pool)
        reg.sync_root()
        entries = reg.all()
        stacks = {e.slug: _stack(e) for e in entries}
        last = reg.last_actions()
        views = {engine_id: _view(engine_id, fut) for engine_id, fut in futures.items()}
    finally:
        pool.shutdown(wait=False)
    projects = {slug: stack.project if stack is not None else slug for slug, stack in stacks.items()}
    for engine_id, view in views.items():
        if view.ok and reg.sync_engine(engine_id, view.seen, projects):
            entries = reg.all()
            stacks.update({e.slug: _stack(e) for e in entries if e.slug not in stacks})
            projects = {slug: stack.project if stack is not None else slug for slug, stack in stacks.items()}
    user = g.get("user")
    cards = []
    for entry in entries:
        if not may_see(user, entry.slug):
            continue
        view = views.get(entry.engine) or EngineView(entry.engine, entry.engine, ok=False, reason="unknown engine")
        stack = stacks.get(entry.slug)
        project = projects.get(entry.slug, entry.slug)
        card = Card(entry, project, view, view.seen.get(project), last.get(entry.slug))
        if stack is not None:
            card.busy = runners().for_stack(stack).busy()
            card.reachable = files_reachable(stack)
        else:
            card.reachable = False
        cards.append(card)
    return cards, views


def _stack(entry: StackEntry):
    try:
        return stack_of(entry)
    except StackpilotError:
        return None


def _ago(at: float) -> str:
    seconds = max(0, int(time.time() - at))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _done(target: str):
    """After a form: htmx follows HX-Redirect (200), a plain form a 303."""
    if request.headers.get("HX-Request"):
        return "", 200, {"HX-Redirect": target}
    return redirect(target, 303)


# -- pages -------------------------------------------------------------------------------------------
@bp.get("/")
def index():
    cards, views = overview()
    return render_template(
        "home/page.html",
        cards=cards,
        engines=views,
        ago=_ago,
        stacks_dir=settings().stacks_dir,
        stack_dir=settings().stack_dir,
        recipe_list=_recipes(),
    )


def _recipes() -> list[recipes.Recipe]:
    found = []
    for name in recipes.names():
        try:
            found.append(recipes.load(name))
        except Exception:  # a broken recipe file must not break the home page
            log.warning("recipe %s could not be read", name)
    return found


@bp.post("/stacks/add")
@require_role("admin")
def add_folder():
    """Add a folder by path (local engine: its files must be readable here)."""
    folder = check_folder(request.form.get("path", ""))
    from_engine = request.form.get("engine", "local") or "local"
    engines().get(from_engine)
    entry = registry().add(project="", directory=str(folder), engine=from_engine, source="added")
    if not entry.project:
        project = registry_project(entry)
        entry = _set_project(entry, project)
    store().audit(g.user.username, "stack.add", str(folder), stack=entry.slug)
    return _done(url_for("services.index", stack=entry.slug))


def registry_project(entry: StackEntry) -> str:
    """Compose's own project name for a folder just added (falls back to the folder's name)."""
    try:
        return runners().default_project_name(entry.path, entry.files or ())
    except StackpilotError:
        return project_guess(entry.path)


def _set_project(entry: StackEntry, project: str) -> StackEntry:
    with store().transaction() as conn:
        conn.execute("UPDATE stacks SET project = ? WHERE slug = ? AND project = ''", (project, entry.slug))
    return registry().get(entry.slug) or entry


@bp.post("/stacks/new")
@require_role("admin")
def new_from_compose():
    """A new stack folder under the root from a pasted or uploaded compose file."""
    text = request.form.get("compose", "")
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.read(1024 * 1024 + 1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The uploaded file is not UTF-8 text.") from None
    entry = registry().create_from_compose(request.form.get("name", ""), text)
    store().audit(g.user.username, "stack.create", entry.directory, stack=entry.slug)
    return _done(url_for("services.index", stack=entry.slug))


@bp.post("/stacks/clone")
@require_role("admin")
def new_from_git():
    """A new stack from a git repository (a recipe's, or any): cloned under the root, then opened
    on its setup wizard, which runs the recipe's preparation steps visibly before the launch."""
    name = request.form.get("name", "")
    url = request.form.get("url", "").strip()
    recipe_name = request.form.get("recipe", "")
    if not url and recipe_name:
        recipe = next((r for r in _recipes() if r.name == recipe_name), None)
        url = recipe.source if recipe else ""
    entry, _lines = registry().create_from_git(name, url)
    store().audit(g.user.username, "stack.clone", url[:300], stack=entry.slug)
    return _done(url_for("setup.index", stack=entry.slug))


@bp.post("/stacks/<slug>/forget")
@require_role("admin")
def forget(slug: str):
    """Drop a stack from the list (files and containers stay as they are)."""
    entry = registry().require(slug)
    registry().forget(entry.slug)
    store().audit(g.user.username, "stack.forget", entry.slug, stack=entry.slug)
    return _done(url_for("home.index"))


@bp.post("/users/<int:user_id>/stacks")
@require_role("admin")
def user_stacks(user_id: int):
    """Limit an operator or viewer to chosen stacks (none ticked: every stack)."""
    user = store().user_by_id(user_id)
    if user is None:
        raise NotFound("There is no such user.")
    chosen = request.form.getlist("stack")
    registry().set_allowed(user.id, chosen)
    store().audit(g.user.username, "user.stacks", user.username, detail=", ".join(sorted(chosen)) or "all")
    return render_template(
        "home/_user_stacks.html", user=user, stacks=registry().all(), allowed=registry().allowed(user.id), saved=True
    )


@bp.app_context_processor
def _user_stack_limits() -> dict:
    def limits_for(user_id: int):
        return registry().allowed(user_id)

    return {"stack_limits_for": limits_for, "all_stacks": lambda: registry().all()}


# -- a stack seen only through its containers ------------------------------------------------------
@stack_bp.get("/containers")
def containers():
    """State, logs and start/stop/restart of a stack's containers, from the engine alone."""
    entry = current_entry()
    if entry is None:
        raise NotFound("There is no stack by that name.")
    stack = current_stack()
    error = ""
    found = []
    try:
        found = engine_containers.project_containers(stack_engine(), stack.project)
    except StackpilotError as e:
        error = e.message
    return render_template(
        "home/containers.html",
        entry=entry,
        stack=stack,
        found=found,
        error=error,
        can_act=has_role("operator"),
        reachable=files_reachable(stack),
    )


@stack_bp.post("/containers/<container_id>/<action>")
@require_role("operator")
def container_action(container_id: str, action: str):
    """Start, stop or restart one container of the stack (checked to belong to it)."""
    if action not in ("start", "stop", "restart"):
        raise NotFound("There is no such action.")
    stack = current_stack()
    engine = stack_engine()
    mine = {c.id: c for c in engine_containers.project_containers(engine, stack.project)}
    target = mine.get(container_id)
    if target is None:
        raise NotFound("That container is not part of this stack.")
    getattr(engine_containers, action)(engine, target.id)
    engine_containers.forget(target.id)
    store().audit(g.user.username, f"container.{action}", target.name)
    return _done(url_for("stackhome.containers"))
