"""First run: claim the admin account with the setup token, then the guided setup wizard.

Each step is a page (GET never changes anything) with a POST that saves the step's choices in
the store and opens the next step. Nothing is written to the stack before the launch.
"""

from __future__ import annotations

import functools

from flask import Blueprint
from flask import abort
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app import wizard
from app.engine.self import own_container_id
from app.engine.self import own_project
from app.errors import InvalidInput
from app.errors import StackpilotError
from app.stack import Stack
from app.stack import model as stack_model
from app.web.auth import access
from app.web.context import current_stack
from app.web.context import runners
from app.web.context import settings
from app.web.context import settings_key
from app.web.context import stack_engine as engine
from app.web.context import store
from app.web.security import client_address
from app.web.security import login_user
from app.web.security import public_until_claimed
from app.web.security import require_role
from app.wizard import envdraft
from app.wizard import launch
from app.wizard import plan as planning
from app.wizard import preflight
from app.wizard import recipe as recipes
from app.wizard import state as wizard_state
from app.wizard import steps

bp = Blueprint("setup", __name__, url_prefix="/setup")


@bp.app_template_test("bad_hostname")
def bad_hostname(name: str) -> bool:
    return envdraft.check_hostname(name) is not None


# -- the claim ------------------------------------------------------------------------------------
@bp.get("/")
@public_until_claimed
@require_role("admin")
def index():
    if store().count_users("admin") == 0:
        return render_template("setup/claim.html", error=None, username=settings().admin_user)
    state = _load()
    if state.completed and state.reached == "launch" and state.launch.get("status") == "ok":
        return _page("done", state)
    return redirect(url_for("setup.step", name=state.reached))


@bp.post("/claim")
@public_until_claimed
@require_role("admin")
def claim():
    """Token + username + password make the first admin; the claimer is signed in at once."""
    form = request.form
    username = form.get("username", "").strip()[:64]
    client = client_address()
    try:
        user = access().token.claim(store(), client, form.get("token", ""), username, form.get("password", ""))
    except StackpilotError as e:
        store().audit(username or "?", "setup.claim", result="refused", detail=f"from {client}")
        if store().count_users("admin"):
            return redirect(url_for("auth.login"))
        return render_template("setup/claim.html", error=e.message, username=username), e.status
    login_user(user)
    store().audit(user.username, "setup.claim", detail=f"from {client}")
    return redirect(url_for("setup.index"))


# -- helpers ---------------------------------------------------------------------------------------
def _directory():
    stack = current_stack()
    return stack.directory if stack is not None else None


def _keys() -> tuple[str, str]:
    """(the wizard's store key, the stack settings' store key) of this request's stack."""
    skey = settings_key()
    return wizard_state.key_for(skey), skey


def _load():
    return wizard_state.load(store(), _keys()[0])


def _save(state) -> None:
    wizard_state.save(store(), state, _keys()[0])


def _recipe(state):
    directory = _directory()
    return recipes.for_stack(directory, state.stack.get("recipe")) if directory else recipes.EMPTY


def launch_running(state) -> bool:
    job = launch.latest(state.stack.get("project") or "")
    return job is not None and not job.done


def _page(step: str, state, status: int = 200, **context):
    return render_template(
        "setup/page.html",
        step=step,
        state=state,
        steps=wizard.STEPS,
        titles=wizard.TITLES,
        recipe=_recipe(state),
        **context,
    ), status


def form_step(name: str):
    """A step's POST: a refused form shows the same step again with the reason (422)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except InvalidInput as e:
                state = _load()
                if _directory() is None:
                    raise
                return _page(name, state, 422, **{**_context(name, state), "form_error": e.message})

        return wrapped

    return decorator


def _save_and_go(state, done_step: str):
    state.advance(done_step)
    _save(state)
    store().audit(g.user.username, f"setup.{done_step}")
    return redirect(url_for("setup.step", name=wizard.STEPS[wizard.STEPS.index(done_step) + 1]))


# -- the steps -------------------------------------------------------------------------------------
@bp.get("/<name>")
@require_role("admin")
def step(name: str):
    if name not in wizard.STEPS or name == "claim":
        abort(404)
    state = _load()
    if not state.may_open(name) or (_directory() is None and name != "preflight"):
        return redirect(url_for("setup.step", name=state.reached if _directory() else "preflight"))
    return _page(name, state, **_context(name, state))


def _own():
    try:
        return own_project(engine(), settings().self_container_id)
    except StackpilotError:
        return None


def _stack_choice(state, recipe) -> dict:
    directory = _directory()
    draft = envdraft.load(directory, recipe)
    return steps.stack_defaults(
        directory,
        state.stack,
        recipe,
        store().get_setting(_keys()[1]) or {},
        _own(),
        draft.base.values(),
        store(),
        runners(),
    )


def _draft_bytes(state, recipe) -> bytes:
    """The .env the launch would write now (the example's values where nothing is decided yet)."""
    return planning.build(_directory(), state, recipe).env_bytes


def _context(name: str, state) -> dict:
    directory = _directory()
    recipe = _recipe(state)
    if name == "stack":
        choice = _stack_choice(state, recipe)
        profiles_of, why_not = _profile_helpers(state, recipe)
        profiles = profiles_of(planning.chosen_files(choice, recipe))
        return {
            "profiles": profiles,
            "unavailable": why_not([o.name for o in profiles.options]),
            "files": steps.file_rows(directory, choice["files"], recipe.files, tuple(recipe.overrides.values())),
            "detected": recipes.detect(directory),
            "choice": choice,
        }
    if name == "config":
        stack = planning.stack_for(directory, state, recipe)
        draft = envdraft.load(directory, recipe, stack.files, stack.profiles)
        decided = planning.decided_env(state, recipe, draft)
        return {"draft": draft, "variables": envdraft.variables(draft, recipe, decided)}
    if name == "https":
        return {"https": _https_choice(state, recipe)}
    if name == "review":
        return {"plan": planning.build(directory, state, recipe)}
    if name == "launch":
        stack = planning.stack_for(directory, state, recipe)
        job = launch.latest(stack.project)
        if (job is None or job.status == "failed") and _notice_later_up(state, stack):
            job = None  # the failure is history: the stack runs now
        return {"job": job.snapshot() if job else None}
    return {}


def _notice_later_up(state, stack) -> bool:
    """A launch that failed, and a stack that runs now (a later Up from the Services page): the
    setup page says so instead of a stale "failed". True when that is the case."""
    if state.launch.get("recovered"):
        return True
    if state.launch.get("status") != "failed":
        return False
    try:
        model = stack_model.load_model(runners().for_stack(stack))
        up = launch.running_now(engine(), stack.project, model.service_names())
    except StackpilotError:
        return False
    if up:
        state.launch = {**state.launch, "status": "ok", "recovered": True}
        state.completed = True
        state.env = {}
        _save(state)
    return up


def _https_choice(state, recipe) -> dict:
    current = envdraft.load(_directory(), recipe).base
    https = dict(state.https)
    https.setdefault("mode", "private")
    names = dict(https.get("hostnames") or {})
    for key in recipe.hostnames:
        existing = current.get(key) or ""
        names.setdefault(key, "" if envdraft.is_placeholder(existing) or "yourdomain" in existing else existing)
    https["hostnames"] = names
    https.setdefault(
        "email",
        ""
        if "yourdomain" in (current.get(recipe.email_key) or "")
        else (current.get(recipe.email_key) or "")
        if recipe.email_key
        else "",
    )
    https.setdefault("management", current.get("MANAGEMENT_HOSTNAME") or "")
    return https


@bp.get("/preflight/checks")
@require_role("admin")
def checks():
    """The check rows (slow: they ask the engine and Compose), loaded into the preflight page."""
    state = _load()
    directory = _directory()
    if directory is None:
        report = preflight.Report(
            [
                preflight.Check(
                    "folder",
                    "Stack folder",
                    "fail",
                    "Stackpilot was started without STACKPILOT_STACK_DIR.",
                    "Set STACKPILOT_STACK_DIR to the stack's folder (mounted at the same path) and restart Stackpilot.",
                )
            ]
        )
    else:
        recipe = _recipe(state)
        report = preflight.run(
            runners(),
            engine(),
            planning.stack_for(directory, state, recipe),
            recipe,
            container=own_container_id(settings().self_container_id) or None,
            env_bytes=_draft_bytes(state, recipe),
        )
    return render_template("setup/_checks.html", report=report, at_review=request.args.get("at") == "review")


@bp.post("/preflight")
@require_role("admin")
@form_step("preflight")
def preflight_done():
    if _directory() is None:
        raise InvalidInput("Set STACKPILOT_STACK_DIR first: there is no stack to set up.")
    return _save_and_go(_load(), "preflight")


@bp.post("/stack")
@require_role("admin")
@form_step("stack")
def stack_done():
    state = _load()
    recipe = _recipe(state)
    profiles_of, why_not = _profile_helpers(state, recipe)
    state.stack = steps.parse_stack(request.form, _directory(), recipe, profiles_of, why_not)
    return _save_and_go(state, "stack")


def _profile_helpers(state, recipe):
    """(files -> the profiles they offer, profile names -> why one is not offered here)."""
    directory = _directory()
    draft = _draft_bytes(state, recipe)
    report = preflight.Report()
    _, info = preflight.engine_check(engine())
    _, report.nvidia, report.amd = preflight.gpu_checks(info) if info else ([], False, False)

    def profiles_of(files):
        return steps.profile_choice(runners(), Stack(directory, "preview", tuple(files)), draft)

    return profiles_of, lambda names: report.possible_profiles(recipe, names)


@bp.get("/stack/profiles")
@require_role("admin")
def stack_profiles():
    """The profiles fragment for the files ticked right now (the Stack step refreshes it on change)."""
    state = _load()
    recipe = _recipe(state)
    profiles_of, why_not = _profile_helpers(state, recipe)
    try:
        _files, _override, every = steps.form_files(request.args, _directory(), recipe)
    except InvalidInput as e:
        return render_template(
            "setup/_profiles.html",
            profiles=steps.ProfileChoice([], []),
            chosen=[],
            unavailable={},
            profiles_error=e.message,
        ), 422
    choice = profiles_of(every)
    chosen = [*request.args.getlist("profile"), *[v for k, v in request.args.items() if k.startswith("group_")]]
    return render_template(
        "setup/_profiles.html", profiles=choice, chosen=chosen, unavailable=why_not([o.name for o in choice.options])
    )


@bp.post("/config/generate")
@require_role("admin")
def generate_secrets():
    """Fill every missing or placeholder secret at once (kept in the wizard until launch)."""
    state = _load()
    recipe = _recipe(state)
    stack = planning.stack_for(_directory(), state, recipe)
    draft = envdraft.load(_directory(), recipe, stack.files, stack.profiles)
    fresh = envdraft.generate_missing(draft, recipe, planning.decided_env(state, recipe, draft))
    state.env.update(fresh)
    state.generated = sorted(set(state.generated) | set(fresh))
    _save(state)
    store().audit(g.user.username, "setup.generate", ", ".join(sorted(fresh))[:500])
    return redirect(url_for("setup.step", name="config", generated=len(fresh)))


@bp.post("/config")
@require_role("admin")
@form_step("config")
def config_done():
    state = _load()
    typed = steps.parse_config(request.form, _context("config", state)["variables"])
    state.env.update(typed)
    state.generated = [k for k in state.generated if k not in typed]
    _save(state)
    missing = steps.still_missing(_context("config", state)["variables"])
    if missing:
        raise InvalidInput(f"Still placeholders: {', '.join(missing)}. Use “Generate all missing secrets”.")
    return _save_and_go(state, "config")


@bp.post("/https")
@require_role("admin")
@form_step("https")
def https_done():
    state = _load()
    recipe = _recipe(state)
    state.https, problems = steps.parse_https(request.form, recipe)
    if problems:
        _save(state)  # keep what was typed; the step shows it again
        raise InvalidInput(" ".join(problems))
    return _save_and_go(state, "https")


@bp.post("/launch")
@require_role("admin")
@form_step("review")
def launch_start():
    state = _load()
    if not state.may_open("review"):
        raise InvalidInput("Finish the earlier steps first.")
    recipe = _recipe(state)
    plan = planning.build(_directory(), state, recipe)
    st = store()
    user = g.user.username
    wkey, skey = _keys()

    def remember(stack_settings: dict) -> None:
        st.set_setting(skey, stack_settings)
        stack_model.forget()

    def finished(job: launch.LaunchJob) -> None:
        latest_state = wizard_state.load(st, wkey)
        latest_state.launch = {
            "status": job.status,
            "service": job.failure.service if job.failure else "",
            "finished_at": job.finished_at,
        }
        if job.status == "ok":
            latest_state.completed = True
            latest_state.env = {}  # the .env holds them now; the store keeps no copies
        wizard_state.save(st, latest_state, wkey)
        st.audit(
            user,
            "setup.launch",
            job.project,
            result=job.status,
            detail=job.failure.reason if job.failure else "",
        )

    launch.start(
        plan,
        runners().for_stack(plan.stack),
        engine(),
        user,
        settings().backups_keep,
        remember,
        finished,
        self_container=settings().self_container_id,
    )
    state.advance("review")
    wizard_state.save(st, state, wkey)
    return redirect(url_for("setup.step", name="launch"))


@bp.get("/launch/progress")
@require_role("admin")
def launch_progress():
    """The live launch panel; polling stops (286) when the launch ended; success opens the table."""
    state = _load()
    directory = _directory()
    job = launch.latest(planning.stack_for(directory, state, _recipe(state)).project) if directory else None
    snapshot = job.snapshot() if job else None
    html = render_template("setup/_launch_panel.html", job=snapshot, state=state)
    if snapshot is None or snapshot["status"] == "failed":
        return html, 286
    if snapshot["status"] == "ok":
        return html, 200, {"HX-Redirect": url_for("services.index")}
    return html


@bp.post("/restart")
@require_role("admin")
def restart():
    """Run the wizard again (earlier choices are kept as defaults)."""
    wizard_state.restart(store(), *_keys())
    store().audit(g.user.username, "setup.restart")
    return redirect(url_for("setup.step", name="preflight"))
