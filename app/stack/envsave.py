"""The one way a stack's `.env` is saved: form save, raw save, restore and create all come here.

load with the form's version -> validate (only real rules refuse, and only for values this save
changes: an untouched value never blocks) -> ask the real Compose whether it still reads the
stack with the new file -> hold a database-password change when the database already keeps data
-> back up, write atomically -> the services whose resolved config changed. Flask-free: Compose
and the engine come in as two callables, so the view stays thin and this stays testable.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import ComposeFailed
from app.errors import StackpilotError
from app.stack import backups
from app.stack import schema as schema_mod
from app.stack import variables
from app.stack.envfile import BOM
from app.stack.envfile import EnvDocument

log = logging.getLogger(__name__)

# config(env_bytes or None) -> the resolved compose config (raises StackpilotError)
ConfigFn = Callable[[bytes | None], dict]
# data(config, services) -> {service: [existing volumes / non-empty folders]}
DataFn = Callable[[dict, Iterable[str]], dict[str, list[str]]]


@dataclass
class SaveOutcome:
    """What a save did, for the view to render as it is."""

    saved: bool = False
    unchanged: bool = False
    changed: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (key or "line N", message)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    backup: str | None = None
    affected: list[str] | None = None  # services whose resolved config changed; None: unknown
    affected_error: str = ""
    confirm: dict | None = None  # held: {"keys": [...], "data": {service: [where]}}
    copies: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)  # database passwords still placeholders


def evaluate(old: bytes | None, new: bytes, schema: schema_mod.Schema) -> tuple[list, list, list[str]]:
    """(refusals, warnings, changed keys) for writing `new` over `old`. An error refuses only when
    its key's value (or its line) changes; on untouched values it is shown as a warning."""
    old_doc = EnvDocument.parse(old or b"")
    new_doc = EnvDocument.parse(new)
    changed = list(backups.changed_keys(old or b"", new))
    old_lines = {e.text for e in old_doc.entries}
    refusals: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    for e in new_doc.entries:
        if e.problem:
            (warnings if e.text in old_lines else refusals).append((f"line {e.line}", e.problem))
    problem_keys = {e.key for e in new_doc.entries if e.problem}
    for _, fields in schema_mod.describe(new_doc, schema):
        for f in fields:
            for finding in f.findings:
                if f.key in problem_keys and finding.level == "error" and "quote" in finding.message:
                    continue  # already named by line
                if finding.level == "error" and (f.key in changed or _signer_changed(f, changed)):
                    refusals.append((f.key, finding.message))
                elif f.value is not None or finding.level == "error":
                    warnings.append((f.key, finding.message))
    return refusals, warnings, changed


def _signer_changed(f: schema_mod.Field, changed: list[str]) -> bool:
    return f.kind.name == "jwt" and bool(f.kind.signed_by) and f.kind.signed_by in changed


def save(
    path: Path,
    schema: schema_mod.Schema,
    new: bytes,
    based_on: str,
    *,
    keep: int,
    copies: Iterable[str] = (),
    confirm_db: bool = False,
    config: ConfigFn | None = None,
    data: DataFn | None = None,
    validate: bool = True,
) -> SaveOutcome:
    """Validate and write `new` as the `.env` at path (through a symlink, to its target).
    Nothing is written when a refusal is found, when the file changed since `based_on`
    (EnvConflict) or when a database-password change is held for confirmation. validate=False only
    for copying the stack's own example into place: its problems are then shown, not refused."""
    path = Path(path)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = None
    refusals, warnings, changed = evaluate(old, new, schema)
    out = SaveOutcome(changed=changed, warnings=warnings, refusals=refusals)
    out.placeholders = [k for k in changed if schema.kind(k).database and _placeholder(schema, k, new)]
    if not validate:
        out.warnings, out.refusals = warnings + refusals, []
    if out.refusals:
        return out
    if old == new and old is not None:
        out.unchanged = True
        return out
    before = draft = None
    if config is not None and old is not None:
        try:
            before = config(None)
        except StackpilotError as e:
            out.affected_error = e.message
        if before is not None:
            try:
                draft = config(new)
            except ComposeFailed as e:  # the stack was readable before; this file breaks it
                out.refusals.append(("Compose", f"{e.message} {e.detail or ''}".strip()))
                return out
            except StackpilotError as e:
                out.affected_error = e.message
    affected = affected_services(before, draft)
    db_keys = [k for k in changed if schema.kind(k).database and (EnvDocument.parse(old or b"").get(k) or "")]
    if db_keys and not confirm_db and before is not None and data is not None:
        try:
            held = data(before, affected or [])
        except StackpilotError as e:
            held = {"(unknown)": [e.message]}
        if held:
            out.confirm = {"keys": db_keys, "data": held}
            return out
    result = backups.save_env(path, new, based_on, keep, copies, _secret_keys(schema, new))
    out.saved = True
    out.backup = result.backup.name if result.backup else None
    out.copies = list(result.copies)
    out.changed = list(result.changed_keys)
    out.affected = affected if draft is not None else None
    return out


def affected_services(before: dict | None, after: dict | None) -> list[str] | None:
    """Services whose resolved definition differs (new, removed or changed)."""
    if before is None or after is None:
        return None
    a = before.get("services") or {}
    b = after.get("services") or {}
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


def _placeholder(schema: schema_mod.Schema, key: str, new: bytes) -> bool:
    var = schema.variable(key)
    value = EnvDocument.parse(new).get(key) or ""
    return bool(value) and ((var.example and value == var.example) or schema_mod.is_placeholder(value, key))


def _secret_keys(schema: schema_mod.Schema, data: bytes) -> set[str]:
    keys = set(EnvDocument.parse(data).keys()) | set(schema.variables)
    return {k for k in keys if schema.kind(k).secret}


def build_schema(
    directory: Path,
    files: Iterable[str],
    profiles: Iterable[str],
    doc: EnvDocument,
    example: bytes | None,
    overrides: Mapping[str, schema_mod.Kind] | None = None,
) -> schema_mod.Schema:
    """The schema of a stack's env file: the example's declarations with the compose files' evidence
    (usage, `${VAR:?}`) and the services of the active profiles (the stack's own plus COMPOSE_PROFILES
    in the file). With no example, a shipped file is its own example for kinds, never for placeholders."""
    usage = variables.scan(directory, list(files), env_raw={e.key: e.raw_value for e in doc.variables()})
    active_profiles = [*profiles, *variables.profiles_from_env(doc.values())]
    active = usage.active_services(active_profiles) if usage.read else None
    if example is None and doc.exists:
        parsed = schema_mod.parse_example(doc.original, overrides, usage, active)
        for var in parsed.variables.values():
            var.example = None  # its current values are not placeholders for themselves
        return parsed
    return schema_mod.parse_example(example or b"", overrides, usage, active)


# The names published stacks give their env example (corpus: .env.example, example.env,
# env.example, .env.dist), most common first.
EXAMPLE_NAMES = (
    ".env.example",
    "example.env",
    "env.example",
    ".env.dist",
    ".env.sample",
    "sample.env",
    ".env.template",
    ".env.default",
    ".env.defaults",
)


def discover_example(directory: Path, preferred: str | None = None) -> Path | None:
    """The stack's env example: the recipe's, else the usual names (.env.example, example.env,
    env.example, .env.dist, .env.sample, .env.template)."""
    names = [preferred] if preferred else []
    names += EXAMPLE_NAMES
    names += [
        ".env.example",
        "example.env",
        "env.example",
        ".env.dist",
        ".env.sample",
        "sample.env",
        ".env.template",
        ".env.default",
        ".env.defaults",
    ]
    for name in names:
        p = Path(directory) / name
        if p.is_file():
            return p
    return None


def apply_values(base: EnvDocument, values: Mapping[str, str | None]) -> bytes:
    """The file with the submitted values set. A value equal to what the file already gives that
    key is untouched: its line stays byte for byte (a `${OTHER}` reference is never replaced by
    OTHER's old value when another key changes). None = leave the key unset."""
    current = base.values()
    doc = EnvDocument.parse(base.original) if base.exists else EnvDocument(exists=False)
    for key, value in values.items():
        if value is None or (key in current and current[key] == value):
            continue
        doc.set(key, value)
    return doc.to_bytes()


def raw_bytes(original: bytes, text: str, *, bom: bool) -> bytes:
    """Raw-editor text back to file bytes. Browsers send every textarea line ending as CRLF: a line
    the person did not change keeps its own ending (a mixed LF/CRLF file stays mixed); a new or
    changed line takes the file's usual ending."""
    old_text = original.decode("utf-8", "surrogateescape")
    if old_text.startswith(BOM):
        old_text = old_text[1:]
    old_lines = old_text.splitlines(keepends=True)
    new_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ends_with_newline = text.endswith(("\n", "\r"))
    if ends_with_newline:
        new_lines.pop()
    crlf = sum(line.endswith("\r\n") for line in old_lines)
    usual = "\r\n" if crlf > len(old_lines) - crlf else "\n"
    bare_old = [line.rstrip("\r\n") for line in old_lines]
    endings = [usual] * len(new_lines)
    matcher = difflib.SequenceMatcher(a=bare_old, b=new_lines, autojunk=False)
    for block in matcher.get_matching_blocks():
        for i in range(block.size):
            old = old_lines[block.a + i]
            endings[block.b + i] = old[len(old.rstrip("\r\n")) :] or usual
    out = "".join(line + end for line, end in zip(new_lines, endings, strict=True))
    if not ends_with_newline and out:
        out = out[: len(out) - len(endings[-1])]
    return ((BOM if bom else "") + out).encode("utf-8", "surrogateescape")
