"""The search box: plain text (case-insensitive) or /regex/ (with optional i flag), matched on the
server against the plain text of each line, with the spans to highlight.

Patterns come from any signed-in viewer, so matching uses the `regex` package: it can stop a
match after a time limit (the standard `re` cannot, and a pattern like `(.*.*.*)x` on a long line
would otherwise hold the interpreter for minutes) and releases the GIL while it matches.
A line whose match runs out of time counts as not matching and is counted in `timeouts`.
`regex` is imported with the first search, not at start-up (it is a few MB nobody needs idle)."""

from __future__ import annotations

from types import ModuleType

from app.errors import InvalidInput

MAX_PATTERN = 500
MAX_MARKS = 64
MATCH_SECONDS = 0.05  # per line; a sane pattern needs microseconds


def _regex() -> ModuleType:
    import regex

    return regex


class LineFilter:
    """A compiled search; `LineFilter("")` matches everything."""

    def __init__(self, query: str = "") -> None:
        self.query = query = (query or "").strip()
        self.regex = None
        self.timeouts = 0
        if not query:
            return
        re = _regex()
        if len(query) > MAX_PATTERN:
            raise InvalidInput(f"The search is too long (at most {MAX_PATTERN} characters).")
        is_regex = len(query) >= 2 and query.startswith("/") and (query.endswith("/") or query.endswith("/i"))
        if is_regex:
            flags = re.IGNORECASE if query.endswith("/i") else 0
            body = query[1:-2] if query.endswith("/i") else query[1:-1]
            if not body:
                raise InvalidInput("The regular expression is empty.")
            try:
                self.regex = re.compile(body, flags)
            except re.error as e:
                raise InvalidInput(f"Invalid regular expression: {e}") from None
        else:
            self.regex = re.compile(re.escape(query), re.IGNORECASE)

    def __bool__(self) -> bool:
        return self.regex is not None

    def match(self, text: str) -> list[tuple[int, int]] | None:
        """None when the line does not match; else the (start, end) spans to highlight."""
        if self.regex is None:
            return []
        spans = []
        try:
            for m in self.regex.finditer(text, timeout=MATCH_SECONDS, concurrent=True):
                if m.end() > m.start():
                    spans.append(m.span())
                    if len(spans) >= MAX_MARKS:
                        break
            if spans:
                return spans
            return [] if self.regex.search(text, timeout=MATCH_SECONDS, concurrent=True) else None
        except TimeoutError:
            self.timeouts += 1
            return None
