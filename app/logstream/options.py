"""What a viewer asked for (tail, since, follow, timestamps, search), parsed from request params
once, for the socket and the download alike."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

from app.errors import InvalidInput
from app.logstream.filters import LineFilter
from app.logstream.lines import parse_stamp

TAIL_CHOICES = ("100", "1000", "all")
SINCE_CHOICES = ("", "5m", "1h", "24h")
MAX_TAIL = 100_000
RESUME_TAIL = 5000  # what the browser keeps; more after a long outage would be dropped there anyway
RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class LogOptions:
    tail: int | None = 100  # None: everything
    since: str = ""  # as typed: "", "5m", "1h", "24h" or a date-time
    since_ns: int | None = None
    follow: bool = True
    timestamps: bool = True
    wrap: bool = True
    query: str = ""
    resume_ns: int | None = None  # reconnect: only lines after this engine time

    @property
    def tail_param(self) -> str:
        return "all" if self.tail is None else str(self.tail)

    def line_filter(self) -> LineFilter:
        return LineFilter(self.query)


def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    return raw.lower() in ("1", "on", "true", "yes")


def parse_tail(raw: str | None) -> int | None:
    raw = (raw or "100").strip().lower()
    if raw == "all":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_TAIL:
        raise InvalidInput(f"Tail must be a number of lines from 1 to {MAX_TAIL:,}, or all.")
    return int(raw)


def parse_since(raw: str | None, now: float | None = None) -> int | None:
    """Relative ("5m", "1h", "24h"), ISO date-time (naive means UTC), or unix seconds; -> ns."""
    raw = (raw or "").strip()
    if not raw:
        return None
    now = time.time() if now is None else now
    if m := RELATIVE.match(raw):
        return int((now - int(m.group(1)) * UNITS[m.group(2)]) * 1_000_000_000)
    if re.fullmatch(r"\d{9,11}(\.\d{1,9})?", raw):
        return int(float(raw) * 1_000_000_000)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("Since must be 5m, 1h, 24h or a date and time such as 2024-05-01T13:30.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


def from_params(params: Mapping[str, str]) -> LogOptions:
    """LogOptions from query parameters; InvalidInput with a message fit for the page."""
    resume = None
    if raw := (params.get("resume") or "").strip():
        resume = parse_stamp(raw.encode("ascii", "replace"))
        if resume is None:
            raise InvalidInput("The resume point is not a timestamp.")
    # A submitted form leaves unchecked boxes out: there, absent means off.
    default = not params.get("form")
    since = (params.get("since") or "").strip()
    if since == "at":
        since = (params.get("since_at") or "").strip()
    options = LogOptions(
        tail=parse_tail(params.get("tail")),
        since=since,
        since_ns=parse_since(since),
        follow=_flag(params, "follow", default),
        timestamps=_flag(params, "timestamps", default),
        wrap=_flag(params, "wrap", default),
        query=(params.get("q") or "").strip(),
        resume_ns=resume,
    )
    options.line_filter()  # an invalid search is refused here, with its message
    return options
