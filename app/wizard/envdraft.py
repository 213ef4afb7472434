"""The .env the wizard will write: the current .env (or the env example when there is none) with
the values decided in the wizard laid over it. Built in memory; written only at launch.

Kinds, placeholders, "required" and the generators are the configuration area's (app.stack.schema
and app.stack.variables): one secret policy for the wizard and the /config editor. The wizard adds
only what a first run needs: which variables get a field (those only a person can give), which a
generator, and which keep the example's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.stack import schema
from app.stack import variables as usage_scan
from app.stack.envfile import EnvDocument
from app.stack.schema import Kind
from app.wizard.recipe import Recipe


@dataclass(frozen=True)
class Variable:
    key: str
    kind: Kind
    value: str  # what the launch will write
    example: str
    source: str  # "env" (kept from .env) | "example" | "wizard" (decided here) | "missing"
    needs_value: bool  # a generatable secret still empty or a placeholder: the generator fills it
    required: bool = False  # Compose or the recipe refuses to start without a value
    asks: bool = False  # only a person can give it: the step shows an input
    why: str = ""  # the help shown beside the input
    used: bool | None = None  # referenced by a service of the chosen profiles (None: unknown)

    @property
    def secret(self) -> bool:
        return self.kind.secret

    @property
    def shown(self) -> str:
        """What the field shows: the value, except a secret still the example's placeholder (the
        field is then empty, and an empty answer keeps the line as it is)."""
        if not self.value or self.needs_value or (self.secret and self.example and self.value == self.example):
            return ""
        return self.value


@dataclass
class Draft:
    base: EnvDocument  # the document the launch edits
    example: EnvDocument | None
    env_exists: bool
    schema: schema.Schema
    usage: usage_scan.Usage | None = None
    active: set[str] | None = None

    def example_value(self, key: str) -> str:
        return (self.example.get(key) if self.example else None) or ""

    def kind(self, key: str) -> Kind:
        return self.schema.kind(key)

    def variable(self, key: str) -> schema.Variable:
        """The schema's facts about key (declared, or read from the compose usage alone)."""
        return self.schema.variable(key)


def load(
    directory: Path, recipe: Recipe, files: tuple[str, ...] | list[str] = (), profiles: tuple[str, ...] | list[str] = ()
) -> Draft:
    """The draft for the stack folder, judged against the chosen compose files and profiles."""
    env = EnvDocument.load(directory / ".env")
    example = EnvDocument.load(directory / recipe.env_example) if recipe.env_example else EnvDocument(exists=False)
    example = example if example.exists else None
    base = (
        env
        if env.exists
        else (EnvDocument.parse(example.to_bytes(), exists=False) if example else EnvDocument(exists=False))
    )
    usage = usage_scan.scan(
        directory, list(files or recipe.files), env_raw={e.key: e.raw_value for e in base.variables()}
    )
    active = usage.active_services(profiles) if usage.read else None
    parsed = schema.parse_example(
        example.to_bytes() if example else b"", overrides=recipe.kinds, usage=usage, active=active
    )
    return Draft(base, example, env.exists, parsed, usage, active)


def _referenced_only(draft: Draft) -> list[str]:
    """Variables the compose files require (`${VAR:?}`) that no env file declares."""
    if draft.usage is None:
        return []
    return [k for k, ref in draft.usage.refs.items() if ref.required is not None]


def variables(draft: Draft, recipe: Recipe, decided: dict[str, str]) -> list[Variable]:
    """Every variable the stack declares or requires, with what the launch will write for it."""
    keys = list(
        dict.fromkeys(
            [*(draft.example.keys() if draft.example else []), *draft.base.keys(), *_referenced_only(draft), *decided]
        )
    )
    values = {**draft.base.values(), **decided}
    out = []
    for key in keys:
        var = draft.variable(key)
        kind = var.kind
        example = draft.example_value(key)
        if key in decided:
            value, source = decided[key], "wizard"
        elif draft.base.get(key) is not None:
            value, source = draft.base.get(key) or "", "env" if draft.env_exists else "example"
        else:
            value, source = example, "missing"
        required = var.required or key in recipe.asked
        used = var.used
        needs = schema.needs_value(key, value, kind, example or var.example, values)
        if needs and used is False and not required:
            needs = False  # feeds only a back end the chosen profiles do not start
        asks = (
            key not in recipe.hostnames
            and key != recipe.email_key
            and (
                key in recipe.asked
                or (kind.secret and not kind.generatable and not kind.derived)
                or (required and not kind.generatable)
            )
        )
        why = recipe.asked.get(key) or _why(draft, key, kind, required)
        out.append(Variable(key, kind, value, example, source, needs, required, asks, why, used))
    return out


def _why(draft: Draft, key: str, kind: Kind, required: bool) -> str:
    var = draft.variable(key)
    if required:
        return var.help or var.required_message or var.note or "The compose files refuse to start without it"
    if kind.secret and not kind.generatable:
        return var.help or var.note or "A key from another service; leave it empty if you do not use that service"
    return var.help or var.note


def generate_missing(draft: Draft, recipe: Recipe, decided: dict[str, str]) -> dict[str, str]:
    """Values for every generatable secret still missing or a placeholder (never a real value, never
    a number, word or URL: the schema's one policy); JWTs signed by a secret generated now are re-signed."""
    current = variables(draft, recipe, decided)
    wanted = [v.key for v in current if v.needs_value]
    values = {v.key: v.value for v in current}
    wanted += [k for k in values if draft.kind(k).name == "jwt"]  # re-signed when their secret is new
    return dict(schema.fill_secrets(values, draft.schema, keys=wanted))


def render(draft: Draft, decided: dict[str, str]) -> bytes:
    """The bytes the launch writes: the base document with the decided values set in place."""
    doc = EnvDocument.parse(draft.base.to_bytes(), exists=draft.base.exists)
    for key, value in decided.items():
        doc.set(key, value)
    return doc.to_bytes()


def changed_keys(draft: Draft, decided: dict[str, str]) -> list[str]:
    return [k for k, v in decided.items() if draft.base.get(k) != v]


@dataclass(frozen=True)
class Write:
    """One line the launch writes, as the review shows it."""

    key: str
    before: str | None  # None: not in the file
    after: str
    secret: bool
    why: str  # "generated" | "entered" | "hostname" | "profiles"


def writes(draft: Draft, decided: dict[str, str], reasons: dict[str, str]) -> list[Write]:
    """Every value the launch sets, with the value it replaces: the exact writes for the review."""
    out = []
    for key in changed_keys(draft, decided):
        kind = draft.kind(key)
        out.append(Write(key, draft.base.get(key), decided[key], kind.secret, reasons.get(key, "entered")))
    return out


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


def is_placeholder(value: str, key: str = "") -> bool:
    """Empty or an example's stand-in text: the schema's one notion of a placeholder."""
    return not (value or "").strip() or schema.is_placeholder(value, key)
