"""The plan: everything the launch will write and run, built from the wizard's saved choices.

The review step shows it in plain words; the launch executes exactly this object, so what a
person approved is what happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.stack import Stack
from app.stack import caddy
from app.wizard import envdraft
from app.wizard.recipe import PrepareStep
from app.wizard.recipe import Recipe
from app.wizard.state import WizardState

UP_ARGS = ("up", "-d", "--remove-orphans")


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the stack folder
    action: str  # "create" | "update" | "copy" | "unchanged"
    summary: str
    backup: str = ""  # where the old version goes


@dataclass
class Plan:
    stack: Stack
    recipe: Recipe
    env_bytes: bytes
    env_version: str  # the .env version the plan was built from (a stale plan is refused)
    env_keys: list[str]
    files: list[FileChange] = field(default_factory=list)
    prepare: list[PrepareStep] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # what Stackpilot remembers about the stack
    writes: list[envdraft.Write] = field(default_factory=list)  # every .env value set, old and new
    lan_sites: dict[str, str] = field(default_factory=dict)  # Private names served by Caddy's addon (issue 13)

    @property
    def env_copies(self) -> tuple[str, ...]:
        return self.recipe.env_copies


def chosen_files(choice: dict, recipe: Recipe) -> list[str]:
    """The compose files in the person's order (the recipe's when nothing was chosen yet), with the
    recipe's access override (private/public) after them."""
    files = list(choice.get("files") or recipe.files)
    override = recipe.overrides.get(choice.get("override") or "")
    if override and override not in files:
        files.append(override)
    return files


def chosen_profiles(choice: dict) -> list[str]:
    """The chosen profiles; a saved choice from before profiles were a list is read too."""
    if "profiles" in choice:
        return [str(p) for p in choice.get("profiles") or []]
    return [choice["profile"]] if choice.get("profile") else []


def stack_for(directory: Path, state: WizardState, recipe: Recipe) -> Stack:
    choice = state.stack
    return Stack(
        directory=directory,
        project=choice.get("project") or recipe.project,
        files=tuple(chosen_files(choice, recipe)),
        profiles=tuple(chosen_profiles(choice)),
    )


def decided_env(state: WizardState, recipe: Recipe, draft: envdraft.Draft | None = None) -> dict[str, str]:
    """The wizard's .env values: configuration choices, the HTTPS step's names, and the profiles
    written back to COMPOSE_PROFILES when the .env (or its example) carries that line."""
    values = dict(state.env)
    current = draft.base.get("COMPOSE_PROFILES") if draft is not None else None
    if current is not None and state.stack:
        chosen = chosen_profiles(state.stack)
        had = [p.strip() for p in current.split(",") if p.strip()]
        if set(chosen) != set(had):  # the same profiles in another order are no change
            kept = [p for p in had if p in chosen]
            values["COMPOSE_PROFILES"] = ",".join([*kept, *[p for p in chosen if p not in kept]])
    https = state.https
    for key, name in (https.get("hostnames") or {}).items():
        if name:
            values[key] = name
    if recipe.email_key and https.get("email"):
        values[recipe.email_key] = https["email"]
    if https.get("management"):
        values["MANAGEMENT_HOSTNAME"] = https["management"]
        values["MANAGEMENT_TLS"] = "tls internal" if https.get("mode") == "private" else ""
    return values


def build(directory: Path, state: WizardState, recipe: Recipe) -> Plan:
    stack = stack_for(directory, state, recipe)
    draft = envdraft.load(directory, recipe, stack.files, stack.profiles)
    decided = decided_env(state, recipe, draft)
    # Private names of the stack's own Caddy sites go to the file its Caddy imports, with `tls internal`;
    # their variables keep the stack's port default (Caddy refuses one name in two TLS policies).
    _, lan_sites = caddy.split_lan_names(
        directory, state.https.get("hostnames") or {}, state.https.get("mode") == "private"
    )
    for key in lan_sites:
        if draft.base.get(key):
            decided[key] = ""
        else:
            decided.pop(key, None)
    data = envdraft.render(draft, decided)
    keys = envdraft.changed_keys(draft, decided)
    reasons = {k: "generated" for k in state.generated}
    reasons.update({k: "hostname" for k in (state.https.get("hostnames") or {})})
    reasons.update({k: "e-mail" for k in [recipe.email_key] if k})
    reasons["COMPOSE_PROFILES"] = "profiles"
    reasons["MANAGEMENT_HOSTNAME"] = "hostname"
    files: list[FileChange] = []
    if draft.env_exists:
        files.append(
            FileChange(
                ".env",
                "update" if keys else "unchanged",
                f"Set {len(keys)} variable{'s' if len(keys) != 1 else ''}: {', '.join(keys)}"
                if keys
                else "Nothing changes.",
                backup=".env_backups/.env.<time of launch>" if keys else "",
            )
        )
    else:
        source = recipe.env_example if draft.example else "nothing"
        files.append(
            FileChange(
                ".env",
                "create",
                f"Made from {source}, with {len(keys)} value"
                f"{'s' if len(keys) != 1 else ''} set: {', '.join(keys) or 'none'}",
            )
        )
    sources = state.stack.get("sources") or {}
    prepare = []
    for step in recipe.prepare:
        if step.kind == "git":
            url = sources.get(step.source_name) or step.url
            prepare.append(PrepareStep(**{**step.__dict__, "url": url}))
        elif step.kind == "template" and not (directory / step.dest).exists():
            prepare.append(step)
    for step in prepare:
        if step.kind == "git":
            target = directory / step.dest
            exists = (target / ".git").is_dir()
            if exists:
                files.append(
                    FileChange(step.dest + "/", "keep", "Already a git checkout: used as it is (not updated).")
                )
                continue
            if target.is_dir() and any(target.iterdir()):
                files.append(
                    FileChange(
                        step.dest + "/", "keep", "Exists and is not a git checkout: used as it is (not fetched)."
                    )
                )
                continue
            files.append(
                FileChange(
                    step.dest + "/",
                    "create",
                    f"Fetch the {step.sparse or ''} folder from {step.url} ({step.ref or 'default branch'}).",
                )
            )
        else:
            files.append(
                FileChange(
                    step.dest,
                    "create",
                    f"Copy of {step.source} with a fresh secret key in place of “{step.replace}”.",
                )
            )
    for copy in recipe.env_copies:
        files.append(FileChange(copy, "copy", "A copy of .env, as the stack expects it there."))
    if lan_sites:
        files.append(
            FileChange(
                f"caddy-addon/{caddy.LAN_FILE}",
                "create",
                "Caddy's own certificate (tls internal) for "
                + ", ".join(lan_sites.values())
                + "; Caddy is restarted to read it.",
            )
        )
    command = ["docker", "compose", "-p", stack.project]  # shown as the host would type it
    for f in stack.files:
        command += ["-f", f]
    for p in stack.profiles:
        command += ["--profile", p]
    command += list(UP_ARGS)
    settings = {"project": stack.project, "files": list(stack.files), "profiles": list(stack.profiles)}
    return Plan(
        stack=stack,
        recipe=recipe,
        env_bytes=data,
        env_version=draft.base.version,
        env_keys=keys,
        files=files,
        prepare=prepare,
        command=command,
        settings=settings,
        writes=envdraft.writes(draft, decided, reasons),
        lan_sites=lan_sites,
    )
