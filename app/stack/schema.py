"""A stack's `.env` schema: sections, help, example values, kinds, and one secret policy.

Kinds come from evidence, strongest first: a recipe's rule, the comment above the variable
(`openssl rand -hex 32`, "exactly 32 characters", "required"), the example's value (a boolean is a
boolean whatever its name; a number, a URL, a path or a plain word is never a secret), how the
compose files use the variable (app.stack.variables: a port mapping, an image, a bind source, a
`${VAR:?}`), and last the name.

Findings: level "error" only for what Compose or the service would really break (a `${VAR:?}` left
empty, a JWT not signed by its secret, a recipe's explicit rule); everything inferred is "warn" and
never blocks. A save refuses only errors on values it changes (app.stack.envsave).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from urllib.parse import urlsplit

from app.errors import InvalidInput
from app.stack import secrets as gen
from app.stack.envfile import EnvDocument
from app.stack.variables import Usage

SECRET_KINDS = {"secret", "password", "hex", "length", "jwt", "userpass"}
KIND_NAMES = SECRET_KINDS | {"hostname", "host", "email", "url", "port", "boolean", "number", "path", "text"}
_BANNER = re.compile(r"^#\s*[#=\-*]{3,}\s*$")
_COMMENTED_VAR = re.compile(r"^#\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_TAG = re.compile(r"^\[(required|optional)\]$", re.I)
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
_DB_NAMES = re.compile(r"POSTGRES|MYSQL|MARIADB|DB_|DATABASE|CLICKHOUSE|NEO4J|MONGO|MINIO|REDIS|PG_")
_TRUE_FALSE = {"true", "false", "yes", "no", "on", "off", "1", "0", "enabled", "disabled"}
_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "enabled", "disabled"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_SIZE = re.compile(r"\d+(?:\.\d+)?\s*(?:[kmgtp]i?b?|bytes?)", re.I)
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h|d|w|y))+", re.I)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_PATH = re.compile(r"(?:/|\./|\.\./|~/|~$|[A-Za-z]:\\)")
_WORD = re.compile(r"[A-Za-z]+(?:[-_.][A-Za-z]+)*")
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|(?:^|_)PASS$|_PWD$|SECRET|(?:^|_)TOKENS?(?:$|_)|SALT|(?:^|_)KEYS?(?:_V\d+)?$"
    r"|_KEY_BASE$|ENC_KEY|ENCRYPTION_KEY|API_KEY|(?:^|_)AUTH$"
)
_PASSWORD_NAME = re.compile(r"PASSWORD|PASSWD|PASSPHRASE|(?:^|_)PASS$|_PWD$")
# Suffixes that make a secret-looking name a setting ABOUT secrets (MAX_TOKENS, TOKEN_EXPIRY_MINUTES).
_NOT_SECRET_SUFFIX = re.compile(
    r"_(?:EXPIRY|EXPIRE|EXPIRES|EXPIRATION|TTL|LIFETIME|MINUTES|SECONDS|HOURS|DAYS|LENGTH|SIZE|COUNT|LIMIT"
    r"|MAX|MIN|TIMEOUT|ENABLED|ENABLE|DISABLED|PATH|FILE|DIR|URL|URI|HOST|PORT|NAME|ALGORITHM|ALG|TYPE|HEADER"
    r"|MODE|METHOD|ENDPOINT|ISSUER|AUDIENCE|USER|USERNAME|ID|ROTATION|REFRESH_INTERVAL|INTERVAL|CACHE|PREFIX)$"
    r"|(?:^|_)MAX_|(?:^|_)MIN_|TOKENIZER|_LOCATION$"
)
# Keys a person gets from somewhere else (a provider, a mail account): an input, never generated.
_THIRD_PARTY = re.compile(
    r"API_KEY|ACCESS_KEY|CLIENT_ID|CLIENT_SECRET|_DSN$|SMTP|MAIL|AWS_|(?:^|_)S3_|GOOGLE|GITHUB|GITLAB|OAUTH"
    r"|OPENAI|ANTHROPIC|AZURE|STRIPE|TWILIO|SLACK|DISCORD|TELEGRAM|SENTRY|LICENSE|RECAPTCHA|HCAPTCHA|MAXMIND"
    r"|ACCESS_TOKEN$|_PAT$|WEBHOOK|VAPID|LDAP|SAML|OIDC|SSO_|_STORAGE_|SPACES|BACKBLAZE|LINODE|WASABI|DOCKER_HUB"
    r"|REGISTRY|TINYBIRD|SIP_|TWITTER|FACEBOOK|APPLE_|MICROSOFT|HUGGING|HF_|CLOUDFLARE|MAPBOX|FIREBASE"
)
_DERIVED = re.compile(r"PUBLIC_KEY|PRIVATE_KEY|PUB_KEY|PRIV_KEY|_PEM$|_CERT$|CERTIFICATE|_KEYPAIR")
_PLACEHOLDER = re.compile(
    r"(?:changeme|change[-_ ]?me|change[-_ ]?(?:this|it)|replace[-_ ]?me|replace[-_ ]?(?:this|with)"
    r"|your[-_ ]|<[^>]*>|\[[^\]]*\]|(?:^|[-_ ])x{3,}(?:$|[-_ ])|todo|fixme|insecure|super[-_ ]?secret"
    r"|should[-_ ]be[-_ ](?:changed|updated)"
    r"|generate[-_ ]|put[-_ ]|enter[-_ ]|fake[-_]|dummy|example|placeholder|must[-_ ]change|set[-_ ]me"
    r"|secret[-_ ]?key[-_ ]?\d*$|^secret$|^password\d*$|^passw0rd$|^admin$|^test$|^demo|^foobar$"
    r"|^change[A-Z_-]|^changeit$|secure|passw(?:or)?d\d*$)",
    re.I,
)
_HELP_SAYS_SECRET = re.compile(
    r"random|openssl|pwgen|generate|change\s*me|changeme|change (?:it|this)"
    r"|secure|secret|must change|should change",
    re.I,
)
_HELP_REQUIRED = re.compile(
    r"[(\[](?:required|mandatory)[)\]]|(?:^|[.:] )(?:required|mandatory)\b|\bmust be set\b", re.I
)
_SERVERS = ("redis", "postgres", "mysql", "mariadb", "mongo", "clickhouse", "rabbitmq", "memcached", "valkey")
_CHARSET = re.compile(r"(?:only|characters?)\W{0,3}`?\[?((?:[A-Za-z0-9]-[A-Za-z0-9]){1,4}[^`\]\s]{0,6})\]?`?")


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
    strict: bool = False  # a recipe's explicit rule: a value breaking it is refused, not warned
    required: bool = False  # a recipe says the stack cannot run without it
    derived: bool = False  # the app makes this value itself (a key pair): leave it to the app
    charset: str = ""  # allowed characters as a regex class body (e.g. "A-Za-z0-9"), from the comment

    @property
    def secret(self) -> bool:
        return self.name in SECRET_KINDS

    @property
    def generatable(self) -> bool:
        return self.secret and self.generate and not self.derived

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
        if self.derived:
            return "made by the app"
        if self.secret and not self.generate:
            return "key you provide"
        if self.name in ("secret", "password") and self.min_length:
            return f"{self.name}, at least {self.min_length} characters"
        return {"url": "URL", "text": "text", "host": "host or URL"}.get(self.name, self.name)


@dataclass
class Variable:
    key: str
    section: str = "General"
    help: str = ""
    example: str | None = None
    required: bool = False
    commented: bool = False  # declared only as `# KEY=...` in the example: optional
    kind: Kind = field(default_factory=Kind)
    required_by: str = ""  # "compose" (`${KEY:?}`), "recipe" or "example" (a marker in its comments)
    required_message: str = ""  # the `:?` message Compose prints
    used: bool | None = None  # False: only services outside the active profiles use it (never validated)
    note: str = ""  # why it is left to the app / to the person


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
    usage: Usage | None = None
    active: set[str] | None = None  # services of the active profiles (None: unknown)

    def kind(self, key: str) -> Kind:
        v = self.variables.get(key)
        if v:
            return v.kind
        contexts = self.usage.contexts(key) if self.usage else set()
        return infer_kind(key, None, "", contexts)

    def variable(self, key: str) -> Variable:
        """The declared variable, or one made from the name and the compose usage alone."""
        var = self.variables.get(key)
        if var is not None:
            return var
        out = Variable(key, UNDECLARED, kind=self.kind(key))
        _apply_usage(out, self.usage, self.active)
        return out


@dataclass(frozen=True)
class Finding:
    level: str  # "error" blocks a save (of a changed value), "warn" does not
    message: str


# -- reading .env.example -----------------------------------------------------------------------
def parse_example(
    text: str | bytes,
    overrides: Mapping[str, Kind] | None = None,
    usage: Usage | None = None,
    active: set[str] | None = None,
) -> Schema:
    """Sections come from banner comment blocks (`####` lines around a title, `[required]` /
    `[optional]` tags) or from a comment paragraph followed by a blank line; a comment directly
    above a variable (or after it on its line) is its help. `usage` (app.stack.variables.scan) adds
    the compose files' evidence; `active` = the services of the active profiles."""
    raw = text.encode() if isinstance(text, str) else text
    doc = EnvDocument.parse(raw)
    schema = Schema(usage=usage, active=active)
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
        contexts = usage.contexts(key) if usage else set()
        kind = overrides[key] if overrides and key in overrides else infer_kind(key, value, help_text, contexts)
        var = Variable(key, section.title, help_text, value, False, commented, kind)
        if section.required and not commented:
            var.required, var.required_by = True, "example"
        elif _HELP_REQUIRED.search(help_text) and not re.search(r"\boptional\b", help_text, re.I):
            var.required, var.required_by = True, "example"
        schema.variables[key] = var
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
                add(m.group(1), value, " ".join(pending) + (" " + e.comment if e and e.comment else ""), commented=True)
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
    if usage is not None:  # `${KEY:?}` in the compose files: a variable the stack cannot start without
        missing = [k for k, ref in usage.refs.items() if ref.required is not None and k not in schema.variables]
        if missing:
            sec = Section("Required by the compose files", "Compose refuses to start while these are unset.", True)
            for key in missing:
                kind = (
                    overrides[key] if overrides and key in overrides else infer_kind(key, None, "", usage.contexts(key))
                )
                schema.variables[key] = Variable(key, sec.title, "", None, False, False, kind)
                sec.keys.append(key)
            schema.sections.append(sec)
    for var in schema.variables.values():
        if var.kind.strict and var.kind.required and not var.required:
            var.required, var.required_by = True, "recipe"
        _apply_usage(var, usage, active)
        var.note = var.note or _note_for(var.kind)
    return schema


def _apply_usage(var: Variable, usage: Usage | None, active: set[str] | None) -> None:
    if usage is None:
        return
    message = usage.required(var.key)
    if message is not None:
        var.required, var.required_by, var.required_message = True, "compose", message
    var.used = usage.is_used(var.key, active)
    ref = usage.refs.get(var.key)
    if (
        var.kind.generatable
        and not var.kind.strict
        and not var.example
        and message is None
        and ref is not None
        and len(ref.services) == 1
        and not usage.env_file_services
    ):
        # An empty example read by one service alone: nothing else must agree on it, so empty
        # usually means "off" (no password on that connection) or an account elsewhere.
        var.kind = replace(var.kind, generate=False)
        var.note = (
            "Only one service reads it and the example leaves it empty (often: feature off, or an "
            "account elsewhere). Stackpilot does not invent it; set it if you use it."
        )
    elif var.kind.generatable and not var.kind.strict and not var.example and message is None and ref is not None:
        server = next((w for w in _SERVERS if w.upper() in var.key.upper()), "")
        serving = [s for s, image in usage.images.items() if server and server in image.lower()]
        if serving and not set(serving) & ref.services:
            # e.g. an empty REDIS password while the redis service itself is never given it: empty = no auth
            var.kind = replace(var.kind, generate=False)
            var.note = (
                f"The {server} service itself is not given this value, so empty means no password "
                "there; Stackpilot does not invent one."
            )


def _note_for(kind: Kind) -> str:
    if kind.derived:
        return "The application makes this value itself (a key pair); leave it empty unless you bring your own."
    if kind.secret and not kind.generate and kind.name != "jwt":
        return "A key from another service or account: Stackpilot cannot make it up. Leave it empty if unused."
    return ""


def is_placeholder(value: str | None, key: str = "") -> bool:
    """A value that says "put a real one here": changeme, your-…, replace-me, <…>, a sentence,
    or the variable's own name (GOOGLE_PROJECT_ID=GOOGLE_PROJECT_ID)."""
    v = (value or "").strip()
    if not v:
        return True
    if key and v.upper() == key.upper():
        return True
    if " " in v and not _URL.match(v):
        return True
    if looks_random(v):  # a generated value may contain "xxx" or "demo" by chance
        return False
    return bool(_PLACEHOLDER.search(v))


def looks_random(value: str) -> bool:
    """A generated-looking value: long, no spaces, letters and digits mixed, high entropy."""
    v = value.strip()
    if len(v) < 16 or not re.fullmatch(r"[A-Za-z0-9+/=_.\-~]+", v) or _PATH.match(v):
        return False
    if not (re.search(r"[A-Za-z]", v) and re.search(r"\d", v)):
        return False
    counts = {c: v.count(c) for c in set(v)}
    entropy = -sum(n / len(v) * math.log2(n / len(v)) for n in counts.values())
    return entropy >= 3.3


def value_shape(value: str) -> str:
    """What a literal value plainly is: boolean, number, size, duration, url, email, path, word,
    or "" when it could be anything."""
    v = value.strip()
    if v.lower() in _BOOL_WORDS:
        return "boolean"
    if _NUMBER.fullmatch(v):
        return "number"
    if _SIZE.fullmatch(v):
        return "size"
    if _DURATION.fullmatch(v):
        return "duration"
    if _URL.match(v):
        return "url"
    if _EMAIL.fullmatch(v):
        return "email"
    if _PATH.match(v):
        return "path"
    if _WORD.fullmatch(v):
        return "word"
    return ""


def infer_kind(key: str, example: str | None, help_text: str, contexts: Iterable[str] = ()) -> Kind:
    """A best guess from the evidence: the help text, the example value, the compose usage, then the name."""
    k = key.upper()
    h = help_text.lower()
    ex = (example or "").strip()
    contexts = set(contexts)
    if m := re.search(r"rand\s+-hex\s+(\d+)", h):
        return Kind("hex", bytes=int(m.group(1)))
    both = h + " " + ex.lower()
    if m := re.search(r"(?:exactly|must be|with)\s+(\d+)\s+char", both):
        return Kind("length", length=int(m.group(1)))
    min_len = 0
    if m := re.search(r"at[\s_-]+least[\s_-]+(\d+)[\s_-]+char", both) or re.search(
        r"(\d+)[\s_-]*chars?[\s_-]*min", both
    ):
        min_len = int(m.group(1))
    charset = m.group(1) if (m := _CHARSET.search(help_text)) else ""
    if k in gen.SUPABASE_ROLES:  # Supabase's API keys: JWTs signed with JWT_SECRET
        return Kind("jwt", signed_by="JWT_SECRET", role=gen.SUPABASE_ROLES[k])
    if ex.startswith("eyJ") and (decoded := gen.jwt_decode(ex)):
        return Kind("jwt", signed_by="JWT_SECRET", role=str(decoded[1].get("role", "")))
    secret_name = bool(_SECRET_NAME.search(k)) and not _NOT_SECRET_SUFFIX.search(k)
    if _DERIVED.search(k) or ex.startswith("-----BEGIN"):
        return Kind("secret", derived=True, generate=False)
    shape = value_shape(ex) if ex else ""
    if ex:
        if shape == "boolean":
            return Kind("boolean")
        if shape == "number":
            if k.endswith("_PORT") or "port" in contexts:
                return Kind("port")
            if secret_name and _PASSWORD_NAME.search(k):
                return Kind("password", generate=False, database=bool(_DB_NAMES.search(k)))
            return Kind("number")
        if shape == "url":
            return Kind("host") if k.endswith(("_HOST", "_HOSTS", "_ENDPOINT")) else Kind("url")
        if shape == "email" and not secret_name:
            return Kind("email")
        if shape in ("path", "size", "duration"):
            return Kind("path" if shape == "path" else "text")
        if k.endswith("_AUTH") and "/" in ex:
            return Kind("userpass", user=ex.split("/", 1)[0])
        if secret_name:
            evidence = (
                is_placeholder(ex, key)
                or looks_random(ex)
                or bool(_HELP_SAYS_SECRET.search(h))
                or ex.lower() in ("secret", "password")
            )
            third_party = bool(_THIRD_PARTY.search(k))
            if evidence:
                return _secret_kind(k, min_len, charset, generate=not third_party)
            if _PASSWORD_NAME.search(k):  # a password that is a plain word: masked, never generated
                return Kind("password", generate=False, database=bool(_DB_NAMES.search(k)), charset=charset)
            return Kind("text")
    else:
        if "bool" in contexts:
            return Kind("boolean")
        if "port" in contexts and not secret_name:
            return Kind("port")
        if "bind" in contexts:
            return Kind("path")
        if secret_name:
            third_party = bool(_THIRD_PARTY.search(k)) and "required-nonempty" not in contexts
            return _secret_kind(k, min_len, charset, generate=not third_party)
    if k.endswith(("_HOSTNAME", "_DOMAIN", "_FQDN")) and shape in ("", "word"):
        return Kind("hostname")
    if k.endswith(("_HOST", "_HOSTS", "_ENDPOINT", "_SERVER", "_ADDR", "_ADDRESS")):
        return Kind("host")
    if k.endswith("_PORT") and not ex:
        return Kind("port")
    if k.endswith(("_URL", "_URI")) and not ex:
        return Kind("url")
    if k.endswith("EMAIL") and not ex:
        return Kind("email")
    if not ex and (k.startswith(("ENABLE_", "DISABLE_")) or k.endswith("_ENABLED")):
        return Kind("boolean")
    return Kind("text")


def _secret_kind(k: str, min_len: int, charset: str, generate: bool) -> Kind:
    if _PASSWORD_NAME.search(k):
        return Kind(
            "password", min_length=min_len, database=bool(_DB_NAMES.search(k)), generate=generate, charset=charset
        )
    return Kind("secret", min_length=min_len, generate=generate, charset=charset)


def kind_from_recipe(spec: Mapping) -> Kind:
    """A Kind from a recipe's `variables:` entry (see app.stack.recipes): an explicit rule."""
    name = spec.get("kind", "text")
    if name not in KIND_NAMES:
        raise ValueError(f"unknown kind {name!r}")
    return Kind(
        name=name,
        bytes=int(spec.get("bytes", 0)),
        length=int(spec.get("length", 0)),
        min_length=int(spec.get("min_length", 0)),
        forbid=str(spec.get("forbid", "")),
        signed_by=str(spec.get("signed_by", "")),
        role=str(spec.get("role", "")),
        differs_from=str(spec.get("differs_from", "")),
        database=bool(spec.get("database", False)),
        allow=tuple(spec.get("allow", ())),
        generate=bool(spec.get("generate", True)),
        user=str(spec.get("user", "")),
        strict=True,
        required=bool(spec.get("required", False)),
        derived=bool(spec.get("derived", False)),
        charset=str(spec.get("charset", "")),
    )


# -- validating ----------------------------------------------------------------------------------
def check(
    key: str,
    value: str | None,
    kind: Kind,
    values: Mapping[str, str],
    *,
    example: str | None = None,
    required: bool = False,
    required_by: str = "",
    required_message: str = "",
) -> list[Finding]:
    """Findings for one value in the context of all values (JWT signatures, must-differ pairs).
    Only a real rule is an "error": `${KEY:?}` left empty, a JWT not signed by its secret, a
    recipe's rule. Format guesses are warnings."""
    out: list[Finding] = []
    if value is None or value == "":
        if required and required_by == "compose":
            why = f" ({required_message})" if required_message else ""
            out.append(Finding("error", f"Compose refuses to start while this is empty{why}."))
        elif required:
            out.append(Finding("warn", "Required: set a value."))
        return out
    if kind.secret and kind.generatable and ((example and value == example) or is_placeholder(value, key)):
        # One clear message; the example's text usually fails the format too (hex, length).
        return [Finding("warn", "Placeholder: generate a real secret.")]
    if value in kind.allow:
        return out
    level = "error" if kind.strict else "warn"
    bad = _format_problem(value, kind, values)
    if bad:
        out.append(Finding("error" if kind.name == "jwt" and "signed" in bad else level, bad))
    if kind.forbid and (chars := sorted({c for c in value if c in kind.forbid})):
        out.append(Finding(level, "Must not contain " + " ".join(repr(c) for c in chars) + "."))
    if kind.charset and re.search(f"[^{kind.charset}]", value):
        out.append(Finding(level, f"Only the characters {kind.charset} are safe here (see the comment)."))
    if kind.differs_from and values.get(kind.differs_from) == value:
        out.append(Finding(level, f"Must differ from {kind.differs_from}."))
    if kind.name in ("secret", "password") and not kind.derived and not kind.min_length and len(value) < 12 and not out:
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
    elif name == "host":
        if _URL.match(value):
            return ""
        host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        if not host or any(c.isspace() for c in value) or "/" in host:
            return "Expected a host name (db, mail.example.com), host:port or a URL."
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
            return "Expected true or false."
    elif name == "number":
        if not _NUMBER.fullmatch(value.strip()):
            return "Expected a number (the example is one)."
    return ""


# -- generating: one secret policy for the wizard and the editor ---------------------------------------
def generate(key: str, kind: Kind, values: Mapping[str, str]) -> str:
    """A fresh value for a secret kind; JWTs are signed with the current signing secret in values.
    Passwords use letters and digits only, so charset limits (A-Za-z0-9) always hold."""
    if not kind.generatable:
        raise InvalidInput(f"{key} is not a value Stackpilot can generate.")
    if kind.name == "hex":
        return gen.hex_key(kind.bytes or 32)
    if kind.name == "length":
        return gen.password(kind.length)
    if kind.name == "jwt":
        secret = values.get(kind.signed_by or "", "")
        if len(secret) < 32:
            raise InvalidInput(
                f"Set {kind.signed_by or 'the signing secret'} (at least 32 characters) before generating {key}."
            )
        return gen.supabase_key(kind.role or "anon", secret)
    if kind.name == "userpass":
        current = values.get(key, "")
        user = current.split("/", 1)[0] if "/" in current else (kind.user or "admin")
        return f"{user}/{gen.password(32)}"
    return gen.password(max(kind.min_length, 32) + (8 if kind.min_length >= 32 else 0))


def needs_value(key: str, value: str | None, kind: Kind, example: str | None, values: Mapping[str, str]) -> bool:
    """True when a bulk "generate missing secrets" may fill this key: empty, still the example's
    value, or a placeholder text. A real value is never touched."""
    if not kind.generatable:
        return False
    if not value:
        return True
    if example and value == example:
        return True
    return is_placeholder(value, key)


def needs_input(var: Variable, value: str | None) -> bool:
    """A value only a person can give and the stack cannot run without: required, empty, not generatable."""
    return var.required and not value and not var.kind.generatable


def fill_secrets(values: Mapping[str, str], schema: Schema, keys: Iterable[str] | None = None) -> dict[str, str]:
    """The one secret policy: {key: new value} for every generatable secret that is empty, a
    placeholder or still the example's value (never a real value, never a number, boolean, URL,
    path or word), signing secrets first; every JWT signed by a secret generated here, or no longer
    signed by its current secret, is re-signed. `values` = what the .env will hold."""
    wanted = set(keys) if keys is not None else None
    current = {k: v for k, v in values.items() if v is not None}
    out: dict[str, str] = {}
    names = list(dict.fromkeys([*schema.variables, *current]))
    variables = [schema.variable(k) for k in names if wanted is None or k in wanted]
    for var in sorted(variables, key=lambda v: v.kind.name == "jwt"):
        kind = var.kind
        if not kind.generatable:
            continue
        value = current.get(var.key)
        stale = False
        if kind.name == "jwt" and value:
            signer = current.get(kind.signed_by, "")
            stale = kind.signed_by in out or (bool(signer) and gen.jwt_verify(value, signer) is None)
        if stale or needs_value(var.key, value, kind, var.example, current):
            try:
                current[var.key] = out[var.key] = generate(var.key, kind, current)
            except InvalidInput:  # a JWT whose signing secret is not set yet: left for the person
                continue
    return out


def resign(values: Mapping[str, str], schema: Schema, signer: str) -> dict[str, str]:
    """Every JWT signed by `signer`, signed again with its current value."""
    current = {k: v for k, v in values.items() if v is not None}
    out = {}
    for key in dict.fromkeys([*schema.variables, *current]):
        kind = schema.kind(key)
        if kind.name == "jwt" and kind.signed_by == signer:
            out[key] = generate(key, kind, current)
    return out


def signed_by(schema: Schema, signer: str, keys: Iterable[str] = ()) -> list[str]:
    """The JWT variables signed by `signer`."""
    names = dict.fromkeys([*schema.variables, *keys])
    return [k for k in names if schema.kind(k).name == "jwt" and schema.kind(k).signed_by == signer]


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
    required_by: str = ""
    declared: bool = True  # in .env.example
    commented_in_env: bool = False  # only present as `# KEY=...` in .env
    duplicate: bool = False
    uses_refs: bool = False
    written_as: str = ""  # the text in the file when it refers to other variables
    used: bool | None = None  # False: no service of the active profiles uses it (not validated)
    note: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def level(self) -> str:
        levels = {f.level for f in self.findings}
        return "error" if "error" in levels else "warn" if "warn" in levels else "ok"

    @property
    def placeholder(self) -> bool:
        return any("Placeholder" in f.message for f in self.findings)

    @property
    def multiline(self) -> bool:
        return "\n" in (self.value or "") or "\r" in (self.value or "")


UNDECLARED = "Not in .env.example"


def describe(
    doc: EnvDocument,
    schema: Schema,
    values: Mapping[str, str | None] | None = None,
    notes: Mapping[str, str] | None = None,
) -> list[tuple[Section, list[Field]]]:
    """Sections with their fields, in .env.example order, then the keys the example does not
    declare. `values` (e.g. a submitted form) override the document's values; None = unset."""
    current: dict[str, str | None] = dict(doc.values())
    if values is not None:
        current.update(values)
    plain = {k: v for k, v in current.items() if v is not None}
    commented = {m.group(1) for e in doc.entries if e.kind == "comment" if (m := _COMMENTED_VAR.match(e.text.strip()))}
    dups = doc.duplicates()

    def make(key: str, var: Variable, section: str, declared: bool) -> Field:
        entry = doc.entry(key)
        value = current.get(key)
        f = Field(
            key=key,
            value=value,
            kind=var.kind,
            section=section,
            help=var.help,
            example=var.example,
            required=var.required,
            required_by=var.required_by,
            declared=declared,
            commented_in_env=key in commented and entry is None,
            duplicate=key in dups,
            used=var.used,
            note=(notes or {}).get(key, "") or var.note,
        )
        if entry is not None and entry.uses_refs and value == entry.value:
            f.uses_refs, f.written_as = True, entry.raw_value
        if var.used is False and var.required_by != "compose":
            f.findings = []  # feeds only services that are not started: never validated
        else:
            f.findings = check(
                key,
                value,
                var.kind,
                plain,
                example=f.example,
                required=f.required,
                required_by=var.required_by,
                required_message=var.required_message,
            )
        if entry is not None and entry.problem:
            f.findings.insert(0, Finding("error", entry.problem))
        if f.duplicate:
            f.findings.append(Finding("warn", "Set more than once in .env; the last line wins."))
        return f

    out: list[tuple[Section, list[Field]]] = []
    for sec in schema.sections:
        out.append((sec, [make(k, schema.variables[k], sec.title, True) for k in sec.keys]))
    extra = [k for k in dict.fromkeys(list(doc.keys()) + list(values or {})) if k not in schema.variables]
    if extra:
        title = UNDECLARED if schema.variables else "Variables"
        sec = Section(title, "Set in .env but not declared by the example file." if schema.variables else "")
        sec.keys = extra
        out.append((sec, [make(k, schema.variable(k), title, False) for k in extra]))
    return out


def fill_missing(fields: list[Field], values: dict[str, str], schema: Schema | None = None) -> list[str]:
    """The editor's "Generate missing secrets": fill_secrets over the fields shown. Returns the
    keys filled; `values` is updated in place."""
    if schema is None:
        schema = Schema()
        for f in fields:
            schema.variables[f.key] = Variable(f.key, f.section, f.help, f.example, f.required, kind=f.kind)
    changes = fill_secrets(values, schema, [f.key for f in fields])
    values.update(changes)
    return list(changes)
