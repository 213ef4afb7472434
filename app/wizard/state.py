"""The wizard's progress, kept in the store so a person can leave and come back (or re-run it).

Decided values live here until the launch writes them; after a successful launch the values
are dropped from the store (the stack's .env holds them from then on).
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

from app.wizard import STEPS

KEY = "wizard"


class SettingsStore(Protocol):
    def get_setting(self, key: str, default: Any = None) -> Any: ...

    def set_setting(self, key: str, value: Any) -> None: ...


@dataclass
class WizardState:
    reached: str = "preflight"  # the furthest step a person may open
    stack: dict = field(default_factory=dict)  # project, files, override, profile, recipe, sources
    env: dict = field(default_factory=dict)  # KEY -> value decided in the wizard, not yet written
    generated: list = field(default_factory=list)  # keys of env the generator filled (the rest were typed)
    https: dict = field(default_factory=dict)  # mode, email, hostnames {KEY: name}
    launch: dict = field(default_factory=dict)  # status, failed_service, finished_at
    completed: bool = False  # a launch has succeeded once

    def may_open(self, step: str) -> bool:
        return STEPS.index(step) <= STEPS.index(self.reached)

    def advance(self, done_step: str) -> None:
        """Mark done_step finished: the next step becomes reachable (never moves back)."""
        nxt = STEPS[min(STEPS.index(done_step) + 1, len(STEPS) - 1)]
        if STEPS.index(nxt) > STEPS.index(self.reached):
            self.reached = nxt


def key_for(settings_key: str) -> str:
    """The wizard's store key for a stack whose settings live under settings_key ("stack" for the
    default stack, "stack:<slug>" for others): each stack has its own first run."""
    return KEY if settings_key == "stack" else KEY + settings_key[len("stack") :]


def load(store: SettingsStore, key: str = KEY) -> WizardState:
    raw = store.get_setting(key) or {}
    known = {k: v for k, v in raw.items() if k in WizardState.__dataclass_fields__}
    state = WizardState(**known)
    if state.reached not in STEPS:
        state.reached = "preflight"
    return state


def save(store: SettingsStore, state: WizardState, key: str = KEY) -> None:
    store.set_setting(key, asdict(state))


def restart(store: SettingsStore, key: str = KEY, settings_key: str = "stack") -> WizardState:
    """Run the wizard again: earlier choices are kept as defaults, progress starts at the checks;
    the stack's saved settings (files, profiles, project: maybe changed in Stack settings since)
    are the defaults now, so a Retry never puts back older ones."""
    state = load(store, key)
    state.reached = "preflight"
    state.launch = {}
    adopt_settings(state, store.get_setting(settings_key) or {})
    save(store, state, key)
    return state


def adopt_settings(state: WizardState, settings: dict) -> None:
    """Take the stack's saved settings (project, files, profiles) as the wizard's stack choice:
    the wizard and Stack settings share one list of files and profiles."""
    if not settings:
        return
    choice = dict(state.stack)
    if settings.get("project"):
        choice["project"] = settings["project"]
    if settings.get("files"):
        choice["files"] = list(settings["files"])
        choice["override"] = ""  # the saved list already holds the override file, if any
    choice["profiles"] = list(settings.get("profiles") or [])
    choice.pop("profile", None)
    state.stack = choice


def settings_changed(store: SettingsStore, settings: dict, key: str = KEY) -> None:
    """Stack settings were saved: the wizard's choice follows them (a later Retry uses them)."""
    state = load(store, key)
    if state.stack or state.reached != "preflight":
        adopt_settings(state, settings)
        save(store, state, key)
