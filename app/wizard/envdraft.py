"""The .env the wizard will write: the current .env (or .env.example when there is none) with
the values decided in the wizard laid over it. Built in memory; written only at launch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.stack.envfile import EnvDocument
from app.wizard.recipe import Recipe
from app.wizard.recipe import generate
from app.wizard.recipe import is_secret
from app.wizard.recipe import kind_of

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PLACEHOLDER_WORDS = re.compile(r"^(|changeme|change-me|change_me|your[-_].*|super-secret.*|example.*|xxx+)$", re.I)


@dataclass(frozen=True)
class Variable:
    key: str
    kind: str
    value: str  # what the launch will write
    example: str
    source: str  # "env" (kept from .env) | "example" | "wizard" (decided here) | "missing"
    needs_value: bool  # a placeholder or empty secret/decision

    @property
    def secret(self) -> bool:
        return is_secret(self.kind)


@dataclass
class Draft:
    base: EnvDocument  # the document the launch edits
    example: EnvDocument | None
    env_exists: bool

    def example_value(self, key: str) -> str:
        return (self.example.get(key) if self.example else None) or ""


def load(directory: Path, recipe: Recipe) -> Draft:
    env = EnvDocument.load(directory / ".env")
    example = EnvDocument.load(directory / recipe.env_example)
    example = example if example.exists else None
    if env.exists:
        return Draft(env, example, True)
    base = EnvDocument.parse(example.to_bytes(), exists=False) if example else EnvDocument(exists=False)
    return Draft(base, example, False)


def is_placeholder(value: str, example: str, kind: str) -> bool:
    """A value a person must replace: empty, a well-known placeholder, or (for secrets) the example's."""
    if not value.strip() or PLACEHOLDER_WORDS.match(value.strip()):
        return True
    return is_secret(kind) and value == example


def variables(draft: Draft, recipe: Recipe, decided: dict[str, str]) -> list[Variable]:
    """Every variable the stack declares, with what the launch will write for it."""
    keys = list(dict.fromkeys([*(draft.example.keys() if draft.example else []), *draft.base.keys(),
                               *decided]))
    out = []
    for key in keys:
        kind = kind_of(recipe, key)
        example = draft.example_value(key)
        if key in decided:
            value, source = decided[key], "wizard"
        elif draft.base.get(key) is not None:
            value, source = draft.base.get(key) or "", "env" if draft.env_exists else "example"
        else:
            value, source = example, "missing"
        needs = is_placeholder(value, example, kind) if (is_secret(kind) or key in recipe.asked) else False
        out.append(Variable(key, kind, value, example, source, needs))
    return out


def generate_missing(draft: Draft, recipe: Recipe, decided: dict[str, str]) -> dict[str, str]:
    """Values for every secret still missing or a placeholder; real values are never replaced.
    JWT_SECRET comes first so the Supabase keys can be signed with it."""
    fresh: dict[str, str] = {}
    current = {v.key: v for v in variables(draft, recipe, decided)}
    order = sorted(current.values(), key=lambda v: v.kind.startswith("jwt:"))
    for var in order:
        if not var.secret or not var.needs_value:
            continue
        if var.kind.startswith("jwt:"):
            secret = {**{k: v.value for k, v in current.items()}, **decided, **fresh}.get("JWT_SECRET", "")
            if len(secret) < 32:
                continue
            fresh[var.key] = generate(var.kind, {"JWT_SECRET": secret})
        else:
            fresh[var.key] = generate(var.kind, {})
    if "JWT_SECRET" in fresh:  # a new signing secret makes the old keys worthless: re-sign them
        for key, kind in recipe.kinds.items():
            if kind.startswith("jwt:") and key in current:
                fresh[key] = generate(kind, {"JWT_SECRET": fresh["JWT_SECRET"]})
    return fresh


def render(draft: Draft, decided: dict[str, str]) -> bytes:
    """The bytes the launch writes: the base document with the decided values set in place."""
    doc = EnvDocument.parse(draft.base.to_bytes(), exists=draft.base.exists)
    for key, value in decided.items():
        doc.set(key, value)
    return doc.to_bytes()


def changed_keys(draft: Draft, decided: dict[str, str]) -> list[str]:
    return [k for k, v in decided.items() if draft.base.get(k) != v or not draft.env_exists]


def check_hostname(name: str) -> str | None:
    if not HOSTNAME_RE.match(name or ""):
        return "Use a name like n8n.example.com: letters, digits and dashes between dots."
    return None


def check_email(value: str) -> str | None:
    if not EMAIL_RE.match(value or ""):
        return "Use an address like you@example.com; Let's Encrypt writes to it about expiring certificates."
    return None
