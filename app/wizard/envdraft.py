"""The .env the wizard will write: the current .env (or .env.example when there is none) with
the values decided in the wizard laid over it. Built in memory; written only at launch.

Kinds, placeholders and generators are the configuration area's (app.stack.schema), so the
wizard and the /config editor agree on what counts as a real secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.stack import schema
from app.stack.envfile import EnvDocument
from app.stack.schema import Kind
from app.wizard.recipe import Recipe

_PLACEHOLDER = re.compile(r"^(|changeme|change-me|change_me|your[-_].*|xxx+)$", re.I)


@dataclass(frozen=True)
class Variable:
    key: str
    kind: Kind
    value: str  # what the launch will write
    example: str
    source: str  # "env" (kept from .env) | "example" | "wizard" (decided here) | "missing"
    needs_value: bool  # a placeholder or empty secret / decision

    @property
    def secret(self) -> bool:
        return self.kind.secret


@dataclass
class Draft:
    base: EnvDocument  # the document the launch edits
    example: EnvDocument | None
    env_exists: bool
    schema: schema.Schema

    def example_value(self, key: str) -> str:
        return (self.example.get(key) if self.example else None) or ""

    def kind(self, key: str) -> Kind:
        return self.schema.kind(key)


def load(directory: Path, recipe: Recipe) -> Draft:
    env = EnvDocument.load(directory / ".env")
    example = EnvDocument.load(directory / recipe.env_example)
    example = example if example.exists else None
    parsed = schema.parse_example(example.to_bytes() if example else b"", overrides=recipe.kinds)
    if env.exists:
        return Draft(env, example, True, parsed)
    base = EnvDocument.parse(example.to_bytes(), exists=False) if example else EnvDocument(exists=False)
    return Draft(base, example, False, parsed)


def variables(draft: Draft, recipe: Recipe, decided: dict[str, str]) -> list[Variable]:
    """Every variable the stack declares, with what the launch will write for it."""
    keys = list(
        dict.fromkeys([*(draft.example.keys() if draft.example else []), *draft.base.keys(), *decided])
    )
    values = {**draft.base.values(), **decided}
    out = []
    for key in keys:
        kind = draft.kind(key)
        example = draft.example_value(key)
        if key in decided:
            value, source = decided[key], "wizard"
        elif draft.base.get(key) is not None:
            value, source = draft.base.get(key) or "", "env" if draft.env_exists else "example"
        else:
            value, source = example, "missing"
        if kind.secret:
            needs = schema.needs_value(key, value, kind, example, values) if kind.generatable else not value
        elif key in recipe.asked:
            needs = bool(_PLACEHOLDER.match(value.strip()))
        else:
            needs = False
        out.append(Variable(key, kind, value, example, source, needs))
    return out


def generate_missing(draft: Draft, recipe: Recipe, decided: dict[str, str]) -> dict[str, str]:
    """Values for every generatable secret still missing or a placeholder; real values are never
    replaced. Signing secrets come first; JWTs signed by a secret generated now are re-signed."""
    current = variables(draft, recipe, decided)
    values = {v.key: v.value for v in current}
    fresh: dict[str, str] = {}
    for var in sorted(current, key=lambda v: v.kind.name == "jwt"):
        if not (var.secret and var.kind.generatable):
            continue
        stale_jwt = var.kind.name == "jwt" and var.kind.signed_by in fresh
        if var.needs_value or stale_jwt:
            try:
                value = schema.generate(var.key, var.kind, values)
            except Exception:  # a JWT whose signing secret is not set yet: left for the person
                continue
            values[var.key] = fresh[var.key] = value
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
    if not name:
        return "Give a host name such as n8n.example.com."
    problems = schema.check("host", name, Kind("hostname"), {})
    return problems[0].message if problems else None


def check_email(value: str) -> str | None:
    problems = schema.check("email", value, Kind("email"), {})
    if not value:
        return "Give an e-mail address; Let's Encrypt writes to it about expiring certificates."
    return problems[0].message if problems else None


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match((value or "").strip()))
