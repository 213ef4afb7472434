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


def load(store: SettingsStore) -> WizardState:
    raw = store.get_setting(KEY) or {}
    known = {k: v for k, v in raw.items() if k in WizardState.__dataclass_fields__}
    state = WizardState(**known)
    if state.reached not in STEPS:
        state.reached = "preflight"
    return state


def save(store: SettingsStore, state: WizardState) -> None:
    store.set_setting(KEY, asdict(state))


def restart(store: SettingsStore) -> WizardState:
    """Run the wizard again: earlier choices are kept as defaults, progress starts at the checks."""
    state = load(store)
    state.reached = "preflight"
    state.launch = {}
    save(store, state)
    return state
