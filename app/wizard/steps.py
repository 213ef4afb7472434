"""The wizard's steps as domain functions: the defaults each form shows and the validation of what
comes back. Views only parse the request into these and render the result.

A refusal (InvalidInput) names a rule Compose or the stack would really break: a project name
Compose rejects, a file outside the folder, two profiles that start one container twice, a
required value left empty. Everything else is kept as typed.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.compose import Runners
from app.engine.self import OwnProject
from app.errors import InvalidInput
from app.errors import StackpilotError
from app.stack import PROJECT_NAME
from app.stack import Stack
from app.stack import compose_files_in
from app.stack import identity
from app.stack import order_files
from app.stack import schema
from app.stack import validate_settings
from app.stack import variables as usage_scan
from app.stack.envfile import EnvDocument
from app.stack.model import ComposeModel
from app.stack.model import ProfileOption
from app.stack.model import check_profiles
from app.stack.model import exclusive_groups
from app.stack.model import model_from_files
from app.stack.model import model_from_json
from app.stack.model import profile_options
from app.wizard import envdraft
from app.wizard import launch
from app.wizard import plan
from app.wizard import preview
from app.wizard.recipe import Recipe


class Form(Protocol):
    def get(self, key: str, default: str = "") -> str: ...

    def getlist(self, key: str) -> list[str]: ...


# -- files and profiles (shared with Stack settings) -------------------------------------------
@dataclass(frozen=True)
class FileRow:
    name: str
    checked: bool
    position: int  # 1-based place among the checked files; 0 when not checked
    default: bool  # one of the recipe's (or Compose's) default files


def file_rows(
    directory: Path, chosen: Sequence[str], defaults: Sequence[str], exclude: Sequence[str] = ()
) -> list[FileRow]:
    """Every compose file of the folder, the chosen ones first in their order, then the rest
    (exclude: files chosen elsewhere, e.g. a recipe's private/public override)."""
    found = [f for f in compose_files_in(directory) if f not in exclude]
    names = [*chosen, *[f for f in found if f not in chosen]]
    return [
        FileRow(n, n in chosen, (list(chosen).index(n) + 1) if n in chosen else 0, n in defaults)
        for n in dict.fromkeys(names)
    ]


def parse_files(form: Form, directory: Path) -> list[str]:
    """Ticked files (`file`) in the order of their position fields (`pos_<file>`), each checked to
    be a file inside the stack folder."""
    chosen = [f for f in form.getlist("file") if f]
    files = order_files(chosen, {f: form.get(f"pos_{f}", "") for f in chosen})
    root = directory.resolve()
    for name in files:
        path = (directory / name).resolve()
        if root not in path.parents or not path.is_file():
            raise InvalidInput(f"{name!r} is not a file in the stack folder.")
    return files


@dataclass
class ProfileChoice:
    """The profiles offered: checkboxes in Compose's order, exclusive ones as a choice among them."""

    options: list[ProfileOption]
    groups: list[tuple[str, ...]]
    approximate: bool = False  # read from the YAML (Compose could not answer yet)

    @property
    def grouped(self) -> set[str]:
        return {p for g in self.groups for p in g}

    def option(self, name: str) -> ProfileOption | None:
        return next((o for o in self.options if o.name == name), None)


def profile_model(runners: Runners, stack: Stack, env_bytes: bytes | None) -> tuple[ComposeModel, bool]:
    """Every service of every profile (Compose's own answer with the draft .env; the YAML itself
    when Compose cannot answer yet, e.g. before a recipe fetched an included file)."""
    try:
        with preview.draft_stack(stack, env_bytes) as seen:
            every = runners.for_stack(seen).config_json(all_profiles=True)
        return model_from_json(every, every), False
    except StackpilotError:
        return model_from_files(stack.directory, stack.files), True


def profile_choice(runners: Runners, stack: Stack, env_bytes: bytes | None) -> ProfileChoice:
    model, approximate = profile_model(runners, stack, env_bytes)
    options = profile_options(model)
    return ProfileChoice(options, exclusive_groups(options), approximate)


def parse_profiles(form: Form, choice: ProfileChoice) -> list[str]:
    """Checked profiles (`profile`) plus one per exclusive group (`group_<n>`), in Compose's order."""
    picked = [p for p in form.getlist("profile") if p]
    for i in range(len(choice.groups)):
        if value := form.get(f"group_{i}", ""):
            picked.append(value)
    order = [o.name for o in choice.options]
    picked = list(dict.fromkeys(picked))
    check_profiles(choice.options, picked)
    return sorted(picked, key=order.index)


# -- the Stack step ----------------------------------------------------------------------------
def stack_defaults(
    directory: Path,
    choice: dict,
    recipe: Recipe,
    saved: dict,
    own: OwnProject | None,
    env_values: dict[str, str],
    store: identity.SettingsStore,
    runners: Runners,
) -> dict:
    """What the Stack step shows before a person changes anything: their earlier choice, else the
    stack's saved settings, else what Stackpilot's own container was started with, else the
    recipe's defaults and Compose's own project name; profiles from COMPOSE_PROFILES."""
    out = dict(choice)
    mine = identity.own_project_here(own, directory)
    if not out.get("project"):
        out["project"] = (
            saved.get("project")
            or (mine.project if mine else "")
            or (recipe.project if recipe.name else "")
            or identity.compose_name(runners, directory, saved.get("files") or recipe.files, store)
        )
    if not out.get("files"):
        out["files"] = list(saved.get("files") or (mine.files_in(directory) if mine else ()) or recipe.files)
    override_files = {f: v for v, f in recipe.overrides.items()}
    if "override" not in out or not out.get("override"):
        in_list = [override_files[f] for f in out["files"] if f in override_files]
        fallback = recipe.default_override or ("private" if "private" in recipe.overrides else "")
        out["override"] = in_list[0] if in_list else ("" if "override" in out else fallback)
    out["files"] = [f for f in out["files"] if f not in override_files]
    if "profiles" not in out:
        if out.get("profile"):
            out["profiles"] = [out["profile"]]
        elif saved.get("profiles"):
            out["profiles"] = list(saved["profiles"])
        elif from_env := usage_scan.profiles_from_env(env_values):
            out["profiles"] = from_env
        else:
            out["profiles"] = [recipe.default_profile] if recipe.default_profile else []
    out.pop("profile", None)
    sources = dict(out.get("sources") or {})
    for prep in recipe.prepare:
        if prep.source_name:
            sources.setdefault(prep.source_name, prep.url)
    out["sources"] = sources
    return out


def form_files(form: Form, directory: Path, recipe: Recipe) -> tuple[list[str], str, list[str]]:
    """(the ticked files, the recipe's access override, the full ordered list Compose gets)."""
    override = form.get("override", "")
    if override and override not in recipe.overrides:
        raise InvalidInput("Choose one of the override files offered.")
    files = parse_files(form, directory)
    return files, override, plan.chosen_files({"files": files, "override": override}, recipe)


def parse_stack(
    form: Form,
    directory: Path,
    recipe: Recipe,
    profiles_of: Callable[[list[str]], ProfileChoice],
    why_not: Callable[[list[str]], dict[str, str]],
) -> dict:
    """The Stack step's form as the wizard's stack choice; InvalidInput names what Compose refuses.
    Profiles are judged against the files ticked in this very form (profiles_of(all files))."""
    project = form.get("project", "").strip()
    if not PROJECT_NAME.match(project):
        raise InvalidInput("The project name may hold lowercase letters, digits, - and _ only.")
    files, override, every = form_files(form, directory, recipe)
    if not files:
        raise InvalidInput("Tick at least one compose file.")
    choice = profiles_of(every)
    profiles = parse_profiles(form, choice)
    unavailable = why_not([o.name for o in choice.options])
    for name in profiles:
        if unavailable.get(name):
            raise InvalidInput(f"Profile {name} is not offered here: {unavailable[name]}.")
    sources = {}
    for prep in recipe.prepare:
        if prep.source_name:
            url = form.get(f"source_{prep.source_name}", prep.url).strip()
            if problem := launch.check_git_url(url):
                raise InvalidInput(f"{prep.title}: {problem}")
            sources[prep.source_name] = url
    return {
        "recipe": recipe.name,
        "project": project,
        "files": files,
        "override": override,
        "profiles": profiles,
        "sources": sources,
    }


# -- the Configuration step --------------------------------------------------------------------
def parse_config(form: Form, variables: list[envdraft.Variable]) -> dict[str, str]:
    """Values typed in the fields (`var_<KEY>`) that differ from what the .env would hold. Refused:
    a required value left empty, a value the schema says Compose or the service cannot take.
    Optional fields may stay empty."""
    out: dict[str, str] = {}
    problems = []
    values = {v.key: v.value for v in variables}
    for var in variables:
        if not var.asks:
            continue
        typed = form.get(f"var_{var.key}", var.shown)
        typed = typed.strip() if "\n" not in typed else typed
        final = var.value if typed == var.shown else typed  # an untouched field changes nothing
        if not final:
            if var.required:
                problems.append(f"{var.key} needs a value ({(var.why or 'required').rstrip('.').lower()}).")
            elif var.value:
                out[var.key] = ""  # the person cleared a value they saw
            continue
        if final == var.value:
            continue
        values[var.key] = final
        errors = [f.message for f in schema.check(var.key, final, var.kind, values) if f.level == "error"]
        if errors:
            problems.append(f"{var.key}: {errors[0]}")
        else:
            out[var.key] = final
    if problems:
        raise InvalidInput(" ".join(problems))
    return out


def still_missing(variables: list[envdraft.Variable]) -> list[str]:
    """Secrets the generator would fill that Continue cannot go past: a published placeholder
    password on a service that starts (empty optional ones may stay empty)."""
    return [
        v.key
        for v in variables
        if v.needs_value and v.used is not False and (v.required or (v.value and v.value == v.example))
    ]


# -- the HTTPS step --------------------------------------------------------------------------------
def parse_https(form: Form, recipe: Recipe) -> tuple[dict, list[str]]:
    """The HTTPS step's choice and the problems in it (kept as typed either way, so the step can
    show it again)."""
    mode = form.get("mode", "private")
    if mode not in ("private", "public"):
        raise InvalidInput("Choose private or public.")
    problems = []
    names = {}
    for key in recipe.hostnames:
        value = form.get(f"host_{key}", "").strip().lower()
        if value and (problem := envdraft.check_hostname(value)):
            problems.append(f"{key}: {problem}")
        names[key] = value
    management = form.get("management", "").strip().lower()
    if management and (problem := envdraft.check_hostname(management)):
        problems.append(f"MANAGEMENT_HOSTNAME: {problem}")
    email = form.get("email", "").strip()
    if recipe.email_key and (email or mode == "public") and (problem := envdraft.check_email(email)):
        problems.append(f"{recipe.email_key}: {problem}")
    return {"mode": mode, "hostnames": names, "management": management, "email": email}, problems


# -- Stack settings (the same files and profiles model) -------------------------------------------
def env_profiles(directory: Path) -> list[str]:
    """COMPOSE_PROFILES as the stack's .env sets it (Compose reads it when no --profile is given)."""
    doc = EnvDocument.load(directory / ".env")
    return usage_scan.profiles_from_env(doc.values()) if doc.exists else []


def profiles_written_back(directory: Path, profiles: list[str]) -> tuple[bytes, str] | None:
    """(new .env bytes, the version they replace) when the .env carries a COMPOSE_PROFILES line
    that says otherwise: the choice is written back where it was read from. None: nothing to do."""
    doc = EnvDocument.load(directory / ".env")
    if not doc.exists or doc.get("COMPOSE_PROFILES") is None:
        return None
    had = [p.strip() for p in (doc.get("COMPOSE_PROFILES") or "").split(",") if p.strip()]
    if set(had) == set(profiles):  # the same profiles in another order are no change
        return None
    kept = [p for p in had if p in profiles]
    wanted = ",".join([*kept, *[p for p in profiles if p not in kept]])
    version = doc.version
    doc.set("COMPOSE_PROFILES", wanted)
    return doc.to_bytes(), version


def parse_settings(form: Form, stack: Stack, choice: ProfileChoice) -> dict:
    """Stack settings' form (project, ticked files, profiles and free-typed other profiles) as the
    dict to save; InvalidInput for what Compose would refuse."""
    project = form.get("project", "").strip()
    files = parse_files(form, stack.directory)
    known = {o.name for o in choice.options}
    picked = [p for p in form.getlist("profile") if p in known]
    picked += [v for i in range(len(choice.groups)) if (v := form.get(f"group_{i}", ""))]
    check_profiles(choice.options, list(dict.fromkeys(picked)))
    others = [p.strip() for p in form.get("other_profiles", "").split(",") if p.strip()]
    profiles = list(dict.fromkeys([*picked, *[p for p in form.getlist("profile") if p not in known], *others]))
    return validate_settings(stack.directory, project, files, profiles)
