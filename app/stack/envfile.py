"""A line-preserving model of a stack's `.env`, read and written the way Docker Compose reads it.

Compose (compose-go's dotenv parser) is the consumer, so values here mean what Compose sees:

- unquoted: the text up to the end of the line, cut at the first ` #` (space then hash), trailing
  whitespace trimmed, then `$NAME`/`${NAME...}` interpolated and `$$` turned into `$`;
- single quotes: taken literally; a backslash only escapes the single quote (`\\'` -> `'`), any
  other backslash stays; no interpolation;
- double quotes: `\\"` -> `"`, then the escapes \\n \\r \\t \\\\ \\$ \\a \\b \\f \\v \\0NNN, then interpolation
  with `$$` -> `$`;
- anything after a closing quote on the same line other than a `#` comment is parsed by Compose as
  ANOTHER statement (that is how a value injects a variable), so we flag it and never write it.

The writer picks the plainest quoting that reads back exactly: unquoted for a conservative ASCII
set, single quotes when the value has no `'`, no line break and does not end in a backslash, else
double quotes with every `\\`, `"` and `$` escaped (`$` as `$$`) and line breaks written as `\\n`/`\\r`.
Decision on line breaks: they are ENCODED (never written raw), so a value can never start a second
line, let alone a second variable. NUL cannot be carried by an environment variable and is refused.

A document keeps every byte it was read from (BOM, CRLF, missing final newline, comments,
duplicates, `export `); `text()` of an unchanged document is the original, and `set()` rewrites
only the one line that holds the effective (last) assignment of that key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import InvalidInput

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BOM = "\ufeff"
ABSENT_VERSION = "absent"

# Key characters compose-go accepts when reading (we only ever WRITE KEY_RE keys).
_READ_KEY = r"[^\W][\w.\-\[\]]*"
_STATEMENT = re.compile(
    r"(?P<lead>[ \t\v\f\r\x85\xa0]*)(?P<export>export[ \t]+)?(?P<key>" + _READ_KEY + r")"
    r"(?P<sep>[ \t]*[=:][ \t\v\f\r\x85\xa0]*)"
)
_BARE_KEY = re.compile(r"[ \t]*(?:export[ \t]+)?(?P<key>" + _READ_KEY + r")[ \t\r]*$")
# Unquoted values we can write bare: no whitespace, quotes, backslash, `#` or `$`.
_BARE_SAFE = re.compile(r"[A-Za-z0-9_\-.,/:@+=%^*!?~<>|&;()\[\]{}]+")
_ESCAPES = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-7]{0,3})")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


@dataclass
class Entry:
    """One statement, comment or blank line of the file, with its exact text (line ending included)."""

    text: str
    kind: str  # "blank" | "comment" | "var" | "inherit" | "invalid"
    key: str = ""
    value: str = ""  # what Compose sees (escapes and interpolation applied)
    quote: str = ""  # "" | "'" | '"'
    raw_value: str = ""  # the value as written, quotes included
    prefix: str = ""  # indent, export, key and separator
    suffix: str = ""  # what follows the value: spaces, comment, line ending
    uses_refs: bool = False  # the value interpolates other variables
    problem: str = ""  # why Compose would misread or refuse this statement
    line: int = 0  # 1-based first line number

    @property
    def comment(self) -> str:
        """The inline `# comment` after a value, without the hash."""
        text = self.suffix.strip()
        return text[1:].strip() if text.startswith("#") else ""


@dataclass
class EnvDocument:
    """The whole file as entries; `text()` reproduces it, `set()` edits one statement."""

    entries: list[Entry] = field(default_factory=list)
    bom: bool = False
    exists: bool = True
    original: bytes = b""

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | str, *, exists: bool = True) -> EnvDocument:
        """Parse file bytes (undecodable bytes survive through surrogateescape)."""
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        text = raw.decode("utf-8", "surrogateescape")
        bom = text.startswith(BOM)
        if bom:
            text = text[1:]
        doc = cls(entries=_parse_entries(text), bom=bom, exists=exists, original=raw)
        return doc

    @classmethod
    def load(cls, path: Path) -> EnvDocument:
        """Read a file; a missing file is an empty document marked exists=False."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return cls(exists=False)
        return cls.parse(data)

    # -- looking --------------------------------------------------------------------------------
    def text(self) -> str:
        return (BOM if self.bom else "") + "".join(e.text for e in self.entries)

    def to_bytes(self) -> bytes:
        return self.text().encode("utf-8", "surrogateescape")

    @property
    def version(self) -> str:
        """The version the page was built from; compared on save to refuse stale edits."""
        return version_of(self.original if self.exists else None)

    def variables(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "var"]

    def keys(self) -> list[str]:
        """Keys in first-seen order, each once."""
        return list(dict.fromkeys(e.key for e in self.variables()))

    def entry(self, key: str) -> Entry | None:
        """The effective assignment of key: the last one, as Compose lets the last win."""
        found = None
        for e in self.entries:
            if e.kind == "var" and e.key == key:
                found = e
        return found

    def get(self, key: str, default: str | None = None) -> str | None:
        e = self.entry(key)
        return e.value if e else default

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.variables():
            out[e.key] = e.value
        return out

    def duplicates(self) -> set[str]:
        seen: set[str] = set()
        dup: set[str] = set()
        for e in self.variables():
            (dup if e.key in seen else seen).add(e.key)
        return dup

    def problems(self) -> list[tuple[int, str]]:
        """(line, message) for statements Compose would refuse or misread."""
        return [(e.line, e.problem) for e in self.entries if e.problem]

    @property
    def newline(self) -> str:
        for e in self.entries:
            if e.text.endswith("\r\n"):
                return "\r\n"
            if e.text.endswith("\n"):
                return "\n"
        return "\n"

    # -- editing --------------------------------------------------------------------------------
    def set(self, key: str, value: str) -> bool:
        """Give key this value (as Compose will read it); returns False when nothing changed.

        The effective line is rewritten in place (its indent, `export`, comment and line ending
        kept); a new key is appended at the end.
        """
        check_key(key)
        encoded = encode_value(value)
        unclosed = [e for e in self.entries if e.kind == "invalid" and "never closed" in e.problem]
        if unclosed:
            # Compose refuses the whole file, and any quote we add could pair with the open one.
            raise InvalidInput(
                f"Line {unclosed[0].line} opens a quote that is never closed; fix it in the text editor first."
            )
        e = self.entry(key)
        if e is not None:
            if e.value == value and not e.uses_refs and not e.problem:
                return False
            if e.value == value and e.uses_refs:
                return False  # same meaning; keep the reference the person wrote
            suffix = e.suffix
            ending = _line_ending(suffix)
            rest = suffix[: len(suffix) - len(ending)]
            if e.problem:  # text after the closing quote would be another statement: drop it
                rest = ""
            if rest and not rest[0].isspace():
                rest = " " + rest
            if encoded == "" and rest.strip():
                encoded = "''"  # `KEY= # note` would make the comment the value
            new = e.prefix + encoded + rest + ending
            _replace_entry(self, e, new)
            return True
        nl = self.newline
        for c in reversed(self.entries):
            if c.kind == "comment" and re.match(rf"\s*#\s*(?:export\s+)?{key}\s*=", c.text):
                # `# KEY=example` in the file: the new assignment takes the commented line's place
                _replace_entry(self, c, f"{key}={encoded}{_line_ending(c.text) or nl}")
                return True
        if self.entries and not self.entries[-1].text.endswith("\n"):
            last = self.entries[-1]
            _replace_entry(self, last, last.text + nl)
        self.entries = _parse_entries("".join(e.text for e in self.entries) + f"{key}={encoded}{nl}")
        return True


def version_of(data: bytes | None) -> str:
    """A short content hash; `absent` when there is no file."""
    if data is None:
        return ABSENT_VERSION
    return hashlib.sha256(data).hexdigest()[:32]


def check_key(key: str) -> None:
    if not KEY_RE.fullmatch(key or ""):
        raise InvalidInput(f"{key!r} is not a valid variable name (letters, digits and _; not starting with a digit).")


def check_value(value: str) -> None:
    if "\x00" in value:
        raise InvalidInput("A value cannot contain a NUL character.")


def encode_value(value: str) -> str:
    """The text to put after `KEY=` so that Compose reads back exactly `value`."""
    check_value(value)
    if value == "" or _BARE_SAFE.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value and "\r" not in value and not value.endswith("\\"):
        return "'" + value + "'"
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("\n", "\\n").replace("\r", "\\r")
    return '"' + out + '"'


# -- parsing internals ------------------------------------------------------------------------
def _line_ending(text: str) -> str:
    if text.endswith("\r\n"):
        return "\r\n"
    if text.endswith("\n"):
        return "\n"
    return ""


def _replace_entry(doc: EnvDocument, old: Entry, new_text: str) -> None:
    """Swap one entry's text, then re-read the whole text: later values may refer to this one."""
    index = next(i for i, e in enumerate(doc.entries) if e is old)
    texts = [e.text for e in doc.entries]
    texts[index] = new_text
    doc.entries = _parse_entries("".join(texts))


def _parse_entries(text: str, start_line: int = 1, env: dict[str, str] | None = None) -> list[Entry]:
    """Split text into entries, following compose-go's statement rules."""
    entries: list[Entry] = []
    env = dict(env or {})
    pos = 0
    line = start_line
    n = len(text)
    while pos < n:
        end = text.find("\n", pos)
        end = n if end < 0 else end + 1
        physical = text[pos:end]
        stripped = physical.strip()
        if not stripped or stripped == BOM:
            entries.append(Entry(physical, "blank", line=line))
        elif stripped.startswith("#"):
            entries.append(Entry(physical, "comment", line=line))
        else:
            entry, end = _parse_statement(text, pos, end, env)
            entry.line = line
            entries.append(entry)
            if entry.kind == "var":
                env[entry.key] = entry.value
        line += text.count("\n", pos, end)
        pos = end
    return entries


def _parse_statement(text: str, pos: int, end: int, env: dict[str, str]) -> tuple[Entry, int]:
    physical = text[pos:end]
    m = _STATEMENT.match(physical)
    if not m:
        bare = _BARE_KEY.match(physical.rstrip("\n"))
        if bare:  # `KEY` alone: Compose takes it from its own environment
            return Entry(physical, "inherit", key=bare.group("key")), end
        return Entry(physical, "invalid", problem="Compose cannot read this line (not KEY=value)."), end
    key = m.group("key")
    prefix = physical[: m.end()]
    start = pos + m.end()
    first = text[start] if start < len(text) else ""
    if first in ("'", '"'):
        closed, value, after = _scan_quoted(text, start, first)
        if closed < 0:
            problem = f"{key}: the quote is never closed (Compose refuses the file)."
            return Entry(physical, "invalid", key=key, problem=problem), end
        line_end = text.find("\n", after)
        line_end = len(text) if line_end < 0 else line_end + 1
        suffix = text[after:line_end]
        raw_value = text[start:after]
        uses_refs = False
        if first == '"':
            value = _expand_escapes(value)
            value, uses_refs = interpolate(value, env)
        problem = ""
        tail = suffix.strip()
        if tail and not tail.startswith("#"):
            problem = f"{key}: text after the closing quote would be read as another variable."
        return Entry(
            text[pos:line_end],
            "var",
            key=key,
            value=value,
            quote=first,
            raw_value=raw_value,
            prefix=prefix,
            suffix=suffix,
            uses_refs=uses_refs,
            problem=problem,
        ), line_end
    body = physical[m.end() :]
    ending = _line_ending(body)
    content = body[: len(body) - len(ending)]
    cut = content.find(" #")
    value_part = content if cut < 0 else content[:cut]
    value = value_part.rstrip()
    # keep the trimmed spaces with the suffix so the text is reproduced exactly
    raw_value = value
    suffix = body[len(raw_value) :]
    value, uses_refs = interpolate(value, env)
    return Entry(
        physical, "var", key=key, value=value, raw_value=raw_value, prefix=prefix, suffix=suffix, uses_refs=uses_refs
    ), end


def _scan_quoted(text: str, start: int, quote: str) -> tuple[int, str, int]:
    """From the opening quote: (index of closing quote or -1, value, index after the closing quote).

    A backslash before the quote character escapes it (and is dropped); before anything else the
    backslash is kept with the character.
    """
    chars: list[str] = []
    i = start + 1
    escaped = False
    n = len(text)
    while i < n:
        c = text[i]
        if escaped:
            escaped = False
            if c != quote:
                chars.append("\\")
            chars.append(c)
        elif c == "\\":
            escaped = True
        elif c == quote:
            return i, "".join(chars), i + 1
        else:
            chars.append(c)
        i += 1
    return -1, "", n


def _expand_escapes(value: str) -> str:
    def one(m: re.Match) -> str:
        s = m.group(0)
        c = s[1]
        if c == "$":
            return "$$"  # kept escaped for the interpolation step
        if c == "0":
            return chr(int(s[2:] or "0", 8))
        if c == "c":
            return s
        return _SIMPLE_ESCAPES[c]

    return _ESCAPES.sub(one, value)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(value: str, env: dict[str, str]) -> tuple[str, bool]:
    """Compose's `$` rules for .env values: `$$` is `$`; `$NAME` and `${NAME}` (with the
    `:-` `-` `:+` `+` `:?` `?` modifiers) read earlier variables of the file; unknown names are
    empty. Returns (value, whether a reference was used)."""
    if "$" not in value:
        return value, False
    out: list[str] = []
    used = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = value[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            close = _matching_brace(value, i + 1)
            if close < 0:
                out.append(value[i:])
                break
            out.append(_braced(value[i + 2 : close], env))
            used = True
            i = close + 1
        else:
            m = _NAME.match(value, i + 1)
            if m:
                out.append(env.get(m.group(0), ""))
                used = True
                i = m.end()
            else:
                out.append("$")
                i += 1
    return "".join(out), used


def _matching_brace(value: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(value)):
        if value[j] == "{":
            depth += 1
        elif value[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _braced(expr: str, env: dict[str, str]) -> str:
    m = _NAME.match(expr)
    if not m:
        return ""
    name = m.group(0)
    rest = expr[m.end() :]
    current = env.get(name)
    if not rest:
        return current or ""
    for op in (":-", ":+", ":?", "-", "+", "?"):
        if rest.startswith(op):
            arg, _ = interpolate(rest[len(op) :], env)
            if op == ":-":
                return current if current else arg
            if op == "-":
                return current if current is not None else arg
            if op == ":+":
                return arg if current else ""
            if op == "+":
                return arg if current is not None else ""
            return current or ""
    return current or ""
