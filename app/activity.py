"""The audit log as people read it: newest first, filtered, paged, limited to what the reader may see.

Flask-free: the web layer passes who reads (admin or not, the stacks they may see) and the filters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

from app.store import Store

PAGE_SIZE = 50
RESULTS = ("ok", "failed", "refused", "timeout", "asked", "throttled", "held")


@dataclass(frozen=True)
class Filters:
    stack: str = ""
    service: str = ""
    user: str = ""
    action: str = ""
    result: str = ""

    def active(self) -> bool:
        return any((self.stack, self.service, self.user, self.action, self.result))


@dataclass(frozen=True)
class Reader:
    """Who reads: admins see every row; others the rows of the stacks they may see, and their own
    rows outside any stack (sign-ins, password changes) — never another user's account events."""

    username: str
    admin: bool
    stacks: frozenset[str] | None = None  # None: every stack


@dataclass
class Row:
    id: int
    at: float
    username: str
    action: str
    target: str
    result: str
    detail: str
    stack: str
    run_id: str = ""

    @property
    def outcome(self) -> str:
        """The result's family (ok, failed, refused, ...) for its badge."""
        head = self.result.split(":", 1)[0].split(" ", 1)[0]
        return head if head in RESULTS else "other"


@dataclass
class Page:
    rows: list[Row]
    page: int
    more: bool
    options: dict[str, list[str]] = field(default_factory=dict)


def _visibility(reader: Reader) -> tuple[str, list]:
    if reader.admin:
        return "1", []
    own = "(stack = '' AND username = ?)"
    if reader.stacks is None:
        return f"(stack != '' OR {own})", [reader.username]
    slugs = sorted(reader.stacks)
    marks = ", ".join("?" for _ in slugs) or "NULL"
    return f"(stack IN ({marks}) OR {own})", [*slugs, reader.username]


def _where(reader: Reader, f: Filters) -> tuple[str, list]:
    sql, args = _visibility(reader)
    parts, args = [sql], list(args)
    if f.stack:
        parts.append("stack = ?")
        args.append(f.stack)
    if f.service:
        parts.append("(target = ? OR target LIKE ? ESCAPE '\\')")
        args += [f.service, "%" + f.service.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"]
    if f.user:
        parts.append("username = ?")
        args.append(f.user)
    if f.action:
        parts.append("(action = ? OR action LIKE ?)")
        args += [f.action, f.action.rstrip(".") + ".%"]
    if f.result:
        parts.append("(result = ? OR result LIKE ? OR result LIKE ?)")
        args += [f.result, f.result + ":%", f.result + " %"]
    return " AND ".join(parts), args


def read(store: Store, reader: Reader, filters: Filters, page: int = 1, size: int = PAGE_SIZE) -> Page:
    """One page of the log, newest first; `more` says whether an older page exists."""
    page = max(1, page)
    where, args = _where(reader, filters)
    rows = store.select(
        f"SELECT id, at, username, action, target, result, detail, stack FROM audit WHERE {where} "
        "ORDER BY id DESC LIMIT ? OFFSET ?",
        [*args, size + 1, (page - 1) * size],
    )
    out = [Row(*r) for r in rows[:size]]
    vis, vargs = _visibility(reader)
    options = {
        col: [
            r[0]
            for r in store.select(
                f"SELECT DISTINCT {col} FROM audit WHERE {vis} AND {col} != '' ORDER BY {col} LIMIT 200", vargs
            )
        ]
        for col in ("stack", "username", "action")
    }
    return Page(out, page, len(rows) > size, options)


def link_runs(rows: Iterable[Row], runs: Iterable, slack: float = 3.0) -> None:
    """Give each row of a Compose action the id of the run it records (runs are kept in memory, so
    only recent ones): same user, finished within `slack` seconds before the row was written."""
    pool = [r for r in runs if getattr(r, "finished_at", None) is not None]
    for row in rows:
        if not (row.action.startswith("service.") or row.action.startswith("stack.")):
            continue
        best = None
        for run in pool:
            gap = row.at - run.finished_at
            if run.user == row.username and -0.5 <= gap <= slack and (best is None or gap < best[0]):
                best = (gap, run)
        if best is not None:
            row.run_id = best[1].id
