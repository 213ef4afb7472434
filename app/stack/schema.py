"""`.env.example` as the schema of a stack's `.env`: sections, help text, example values, kinds.

Kinds are inferred from names, example values and comments (`openssl rand -hex 32`, "at least 32
characters"), and a stack recipe may override them. Each kind validates a value (findings with
level "error" block a save; "warn" are shown but do not) and each secret kind can be generated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from urllib.parse import urlsplit

from app.errors import InvalidInput
from app.stack import secrets as gen
from app.stack.envfile import EnvDocument

SECRET_KINDS = {"secret", "password", "hex", "length", "jwt", "userpass"}
KIND_NAMES = SECRET_KINDS | {"hostname", "email", "url", "port", "boolean", "text"}
_BANNER = re.compile(r"^#\s*[#=\-*]{3,}\s*$")
_COMMENTED_VAR = re.compile(r"^#\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_TAG = re.compile(r"^\[(required|optional)\]$", re.I)
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DB_NAMES = re.compile(r"POSTGRES|MYSQL|MARIADB|DB_|DATABASE|CLICKHOUSE|NEO4J|MONGO|MINIO|REDIS")
_TRUE_FALSE = {"true", "false", "yes", "no", "on", "off", "1", "0"}


@dataclass(frozen=True)
class Kind:
    """What a variable holds. Extra fields only matter for some kinds."""

    name: str = "text"
    bytes: int = 0  # hex: number of random bytes (2 hex characters each)
    length: int = 0  # length: exact number of characters
    min_length: int = 0
    forbid: str = ""  # characters the consumer cannot take (e.g. `@` in a DB password used in URLs)
    signed_by: str = ""  # jwt: the variable holding the HS256 secret
    role: str = ""  # jwt: the payload's role
    differs_from: str = ""  # must not equal this other variable
    database: bool = False  # a DB password: the database keeps the old one once initialised
    allow: tuple[str, ...] = ()  # literal values accepted besides the kind's format
    generate: bool = True  # secret kinds: offer a generator (not for third-party API keys)
    user: str = ""  # userpass: default user name

    @property
    def secret(self) -> bool:
        return self.name in SECRET_KINDS

    @property
    def generatable(self) -> bool:
        return self.secret and self.generate

    @property
    def label(self) -> str:
        if self.name == "hex":
            return f"hex key ({self.bytes} bytes)"
        if self.name == "length":
            return f"secret, exactly {self.length} characters"
        if self.name == "jwt":
            return f"JWT signed by {self.signed_by}" if self.signed_by else "JWT"
        if self.name == "userpass":
            return "user/password"
        if self.name in ("secret", "password") and self.min_length:
            return f"{self.name}, at least {self.min_length} characters"
        return {"url": "URL", "text": "text"}.get(self.name, self.name)


@dataclass
class Variable:
    key: str
    section: str = "General"
    help: str = ""
    example: str | None = None
    required: bool = False
    commented: bool = False  # declared only as `# KEY=...` in the example: optional
    kind: Kind = field(default_factory=Kind)


@dataclass
class Section:
    title: str
    help: str = ""
    required: bool | None = None
    keys: list[str] = field(default_factory=list)


@dataclass
class Schema:
    variables: dict[str, Variable] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def kind(self, key: str) -> Kind:
        v = self.variables.get(key)
        return v.kind if v else infer_kind(key, None, "")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" blocks a save, "warn" does not
    message: str


# -- reading .env.example -----------------------------------------------------------------------
def parse_example(text: str | bytes, overrides: Mapping[str, Kind] | None = None) -> Schema:
    """Sections come from banner comment blocks (`####` lines around a title, `[required]` /
    `[optional]` tags) or from a comment paragraph followed by a blank line; a comment directly
    above a variable (or after it on its line) is its help."""
    raw = text.encode() if isinstance(text, str) else text
    doc = EnvDocument.parse(raw)
    schema = Schema()
    section = Section("General")
    schema.sections.append(section)
    pending: list[str] = []
    banner: list[str] | None = None

    def new_section(lines: list[str]) -> Section:
        required = None
        rest = []
        for line in lines:
            tag = _TAG.match(line.strip())
            if tag:
                required = tag.group(1).lower() == "required"
            elif line.strip():
                rest.append(line.strip())
        title = rest[0] if rest else ("Required" if required else "Optional" if required is False else "General")
        help_lines = rest[1:]
        if " - " in title:
            title, more = title.split(" - ", 1)
            help_lines.insert(0, more)
        sec = Section(title.strip(" -=*:"), " ".join(help_lines), required)
        schema.sections.append(sec)
        return sec

    def add(key: str, value: str | None, help_text: str, commented: bool) -> None:
        if key in schema.variables:
            return
        required = section.required if section.required is not None else not commented
        if commented:
            required = False
        kind = infer_kind(key, value, help_text)
        if overrides and key in overrides:
            kind = overrides[key]
        schema.variables[key] = Variable(key, section.title, help_text, value, required, commented, kind)
        section.keys.append(key)

    for entry in doc.entries:
        stripped = entry.text.strip()
        if entry.kind == "comment":
            if _BANNER.match(stripped):
                if banner is None:
                    banner = []
                    pending = []
                else:
                    section = new_section(banner)
                    banner = None
                continue
            body = stripped.lstrip("#").strip()
            if banner is not None:
                banner.append(body)
                continue
            m = _COMMENTED_VAR.match(stripped)
            if m:
                inner = EnvDocument.parse(f"{m.group(1)}={m.group(2).strip()}\n".encode())
                e = inner.entry(m.group(1))
                value = e.value if e else m.group(2).strip()
                add(m.group(1), value, " ".join(pending) + (" " + e.comment if e and e.comment else ""),
                    commented=True)
                pending = []
                continue
            pending.append(body)
        elif entry.kind == "blank":
            if pending and banner is None:
                section = new_section(pending)
            pending = []
        elif entry.kind == "var":
            help_text = " ".join(pending + ([entry.comment] if entry.comment else []))
            add(entry.key, entry.value, help_text.strip(), commented=False)
            pending = []
    schema.sections = [s for s in schema.sections if s.keys]
    for key, kind in (overrides or {}).items():
        if key not in schema.variables:  # the recipe knows a variable the example does not declare
            continue
        schema.variables[key].kind = kind
    return schema


def infer_kind(key: str, example: str | None, help_text: str) -> Kind:
    """A best guess from the name, the example value and the help text."""
    k = key.upper()
    h = help_text.lower()
    ex = (example or "").strip()
    if m := re.search(r"rand\s+-hex\s+(\d+)", h):
        return Kind("hex", bytes=int(m.group(1)))
    if m := re.search(r"(?:exactly|must be)\s+(\d+)\s+char", h):
        return Kind("length", length=int(m.group(1)))
    min_len = int(m.group(1)) if (m := re.search(r"at[\s_-]+least[\s_-]+(\d+)[\s_-]+char", h + " " + ex.lower())) else 0
    if k in gen.SUPABASE_ROLES:  # Supabase's API keys: JWTs signed with JWT_SECRET
        return Kind("jwt", signed_by="JWT_SECRET", role=gen.SUPABASE_ROLES[k])
    if ex.startswith("eyJ") and (decoded := gen.jwt_decode(ex)):
        return Kind("jwt", signed_by="JWT_SECRET", role=str(decoded[1].get("role", "")))
    if k.endswith(("_HOSTNAME", "_DOMAIN", "_FQDN")):
        return Kind("hostname")
    if "EMAIL" in k:
        return Kind("email")
    if k.endswith(("_URL", "_URI", "_ENDPOINT")):
        return Kind("url")
    if k.endswith("_PORT") and (not ex or ex.isdigit()):
        return Kind("port")
    if ex.lower() in ("true", "false") or k.startswith(("ENABLE_", "DISABLE_")) or k.endswith("_ENABLED"):
        return Kind("boolean")
    if k.endswith("_AUTH") and "/" in ex:
        return Kind("userpass", user=ex.split("/", 1)[0])
    if re.search(r"PASSWORD|PASSWD|_PASS$|_PWD$", k):
        return Kind("password", min_length=min_len, database=bool(_DB_NAMES.search(k)))
    if re.search(r"SECRET|TOKEN|SALT|_KEY$|_KEY_BASE$|ENC_KEY", k):
        third_party = re.search(r"API_KEY|ACCESS_KEY|_TOKEN$", k) is not None and "SECRET" not in k
        return Kind("secret", min_length=min_len, generate=not third_party)
    return Kind("text")


def kind_from_recipe(spec: Mapping) -> Kind:
    """A Kind from a recipe's `variables:` entry (see app.stack.recipes)."""
    name = spec.get("kind", "text")
    if name not in KIND_NAMES:
        raise ValueError(f"unknown kind {name!r}")
    return Kind(
        name=name, bytes=int(spec.get("bytes", 0)), length=int(spec.get("length", 0)),
        min_length=int(spec.get("min_length", 0)), forbid=str(spec.get("forbid", "")),
        signed_by=str(spec.get("signed_by", "")), role=str(spec.get("role", "")),
        differs_from=str(spec.get("differs_from", "")), database=bool(spec.get("database", False)),
        allow=tuple(spec.get("allow", ())), generate=bool(spec.get("generate", True)),
        user=str(spec.get("user", "")),
    )


# -- validating ----------------------------------------------------------------------------------
def check(key: str, value: str | None, kind: Kind, values: Mapping[str, str], *,
          example: str | None = None, required: bool = False) -> list[Finding]:
    """Findings for one value in the context of all values (JWT signatures, must-differ pairs)."""
    out: list[Finding] = []
    if value is None or value == "":
        if required:
            out.append(Finding("warn", "Required: set a value."))
        return out
    if kind.secret and example and value == example:
        # One clear message; the example's text usually fails the format too (hex, length).
        return [Finding("warn", "Placeholder from .env.example: change me.")]
    if value in kind.allow:
        return out
    bad = _format_problem(value, kind, values)
    if bad:
        out.append(Finding("error", bad))
    if kind.forbid and (chars := sorted({c for c in value if c in kind.forbid})):
        out.append(Finding("error", "Must not contain " + " ".join(repr(c) for c in chars) + "."))
    if kind.differs_from and values.get(kind.differs_from) == value:
        out.append(Finding("error", f"Must differ from {kind.differs_from}."))
    if kind.name in ("secret", "password") and not kind.min_length and len(value) < 12 and not out:
        out.append(Finding("warn", "Short for a secret: 12 characters or more is safer."))
    return out


def _format_problem(value: str, kind: Kind, values: Mapping[str, str]) -> str:
    name = kind.name
    if name == "hex":
        n = kind.bytes * 2
        if not re.fullmatch(r"[0-9a-fA-F]+", value) or (n and len(value) != n):
            return f"Must be {n or 'some'} hex characters (openssl rand -hex {kind.bytes or 32})."
    elif name == "length":
        if len(value) != kind.length:
            return f"Must be exactly {kind.length} characters (now {len(value)})."
    elif name in ("secret", "password"):
        if kind.min_length and len(value) < kind.min_length:
            return f"Must be at least {kind.min_length} characters (now {len(value)})."
    elif name == "jwt":
        decoded = gen.jwt_decode(value)
        if decoded is None:
            return "Not a JWT (three base64url parts separated by dots)."
        payload = decoded[1]
        if kind.role and payload.get("role") != kind.role:
            return f"The token's role is {payload.get('role')!r}, expected {kind.role!r}."
        if isinstance(payload.get("exp"), int | float) and payload["exp"] < time.time():
            return "The token has expired: generate a new one."
        secret = values.get(kind.signed_by) if kind.signed_by else None
        if secret and gen.jwt_verify(value, secret) is None:
            return f"Not signed with the current {kind.signed_by}: re-sign it."
    elif name == "userpass":
        user, sep, pw = value.partition("/")
        if not sep or not user or not pw:
            return "Must be user/password (both parts set)."
    elif name == "hostname":
        host = value.rstrip(".")
        if len(host) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in host.split(".")):
            return "Not a valid host name (letters, digits, - and dots, e.g. n8n.example.com)."
    elif name == "email":
        if not _EMAIL.fullmatch(value):
            return "Not a valid e-mail address."
    elif name == "url":
        parts = urlsplit(value)
        if not parts.scheme or not (parts.netloc or parts.path):
            return "Not a URL (e.g. https://example.com/path)."
    elif name == "port":
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
            return "Must be a port number between 1 and 65535."
    elif name == "boolean":
        if value.lower() not in _TRUE_FALSE:
            return "Must be true or false."
    return ""


# -- generating ------------------------------------------------------------------------------------
def generate(key: str, kind: Kind, values: Mapping[str, str]) -> str:
    """A fresh value for a secret kind; JWTs are signed with the current signing secret in values."""
    if not kind.generatable:
        raise InvalidInput(f"{key} is not a value Stackpilot can generate.")
    if kind.name == "hex":
        return gen.hex_key(kind.bytes or 32)
    if kind.name == "length":
        return gen.password(kind.length)
    if kind.name == "jwt":
        secret = values.get(kind.signed_by or "", "")
        if len(secret) < 32:
            raise InvalidInput(f"Set {kind.signed_by or 'the signing secret'} (at least 32 characters) "
                               f"before generating {key}.")
        return gen.supabase_key(kind.role or "anon", secret)
    if kind.name == "userpass":
        current = values.get(key, "")
        user = current.split("/", 1)[0] if "/" in current else (kind.user or "admin")
        return f"{user}/{gen.password(32)}"
    return gen.password(max(kind.min_length, 32) + (8 if kind.min_length >= 32 else 0))


def needs_value(key: str, value: str | None, kind: Kind, example: str | None, values: Mapping[str, str]) -> bool:
    """True when a bulk "generate missing secrets" may fill this key: empty, still the example's
    placeholder, or a JWT no longer signed by its secret. A real value is never touched."""
    if not kind.generatable:
        return False
    if not value:
        return True
    if example and value == example:
        return True
    return False


def with_kind(var: Variable, kind: Kind) -> Variable:
    return replace(var, kind=kind)


# -- the editor's view of a document -----------------------------------------------------------------
@dataclass
class Field:
    """One variable as the editor shows it: the schema's facts plus the document's state."""

    key: str
    value: str | None  # None: not set in .env
    kind: Kind
    section: str
    help: str = ""
    example: str | None = None
    required: bool = False
    declared: bool = True  # in .env.example
    commented_in_env: bool = False  # only present as `# KEY=...` in .env
    duplicate: bool = False
    uses_refs: bool = False
    written_as: str = ""  # the text in the file when it refers to other variables
    note: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def level(self) -> str:
        levels = {f.level for f in self.findings}
        return "error" if "error" in levels else "warn" if "warn" in levels else "ok"

    @property
    def placeholder(self) -> bool:
        return any("Placeholder" in f.message for f in self.findings)


UNDECLARED = "Not in .env.example"


def describe(doc: EnvDocument, schema: Schema, values: Mapping[str, str | None] | None = None,
             notes: Mapping[str, str] | None = None) -> list[tuple[Section, list[Field]]]:
    """Sections with their fields, in .env.example order, then the keys the example does not
    declare. `values` (e.g. a submitted form) override the document's values; None = unset."""
    current: dict[str, str | None] = dict(doc.values())
    if values is not None:
        current.update(values)
    plain = {k: v for k, v in current.items() if v is not None}
    commented = {m.group(1) for e in doc.entries if e.kind == "comment"
                 if (m := _COMMENTED_VAR.match(e.text.strip()))}
    dups = doc.duplicates()

    def make(key: str, var: Variable | None, section: str) -> Field:
        kind = var.kind if var else infer_kind(key, None, "")
        entry = doc.entry(key)
        value = current.get(key)
        f = Field(
            key=key, value=value, kind=kind, section=section, help=var.help if var else "",
            example=var.example if var else None, required=var.required if var else False,
            declared=var is not None, commented_in_env=key in commented and entry is None,
            duplicate=key in dups, note=(notes or {}).get(key, ""),
        )
        if entry is not None and entry.uses_refs and value == entry.value:
            f.uses_refs, f.written_as = True, entry.raw_value
        f.findings = check(key, value, kind, plain, example=f.example, required=f.required)
        if entry is not None and entry.problem:
            f.findings.insert(0, Finding("error", entry.problem))
        if f.duplicate:
            f.findings.append(Finding("warn", "Set more than once in .env; the last line wins."))
        return f

    out: list[tuple[Section, list[Field]]] = []
    for sec in schema.sections:
        out.append((sec, [make(k, schema.variables[k], sec.title) for k in sec.keys]))
    extra = [k for k in dict.fromkeys(list(doc.keys()) + list(values or {})) if k not in schema.variables]
    if extra:
        title = UNDECLARED if schema.variables else "Variables"
        sec = Section(title, "Set in .env but not declared by .env.example." if schema.variables else "")
        sec.keys = extra
        out.append((sec, [make(k, None, title) for k in extra]))
    return out


def fill_missing(fields: list[Field], values: dict[str, str]) -> list[str]:
    """Generate every secret that is empty or still the example's placeholder (never a real
    value); JWT signing secrets first, so the JWTs are signed with the new ones. Returns the
    keys filled; `values` is updated in place."""
    filled: list[str] = []
    ordered = sorted(fields, key=lambda f: f.kind.name == "jwt")
    for f in ordered:
        if needs_value(f.key, values.get(f.key), f.kind, f.example, values):
            try:
                values[f.key] = generate(f.key, f.kind, values)
            except InvalidInput:
                continue
            filled.append(f.key)
    return filled
