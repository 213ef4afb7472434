"""Engine log messages to whole lines: timestamps parsed, long lines re-joined and cut, bytes decoded.

The engine stores a line longer than 16 KiB as several messages (only the last ends in a newline)
and stamps each; we join them back under the first stamp and keep at most LINE_LIMIT bytes, so a
runaway line costs bounded memory however long it is.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from html import escape

from app.logstream import ansi
from app.logstream.render import line_html

LINE_LIMIT = 16 * 1024
STDOUT = 1
STDERR = 2

_SECONDS: dict[bytes, int] = {}
_FRACTION = re.compile(rb"\.(\d+)")


def parse_stamp(stamp: bytes) -> int | None:
    """RFC 3339 (as the engine writes it, UTC) to nanoseconds since the epoch; None if malformed."""
    head = stamp[:19]
    seconds = _SECONDS.get(head)
    if seconds is None:
        try:
            seconds = calendar.timegm(time.strptime(head.decode("ascii"), "%Y-%m-%dT%H:%M:%S"))
        except (ValueError, UnicodeDecodeError):
            return None
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        _SECONDS[head] = seconds
    if len(stamp) == 30 and stamp[19] == 46:  # the usual "...SS.nnnnnnnnnZ": the hot path
        try:
            return seconds * 1_000_000_000 + int(stamp[20:29])
        except ValueError:
            return None
    m = _FRACTION.match(stamp, 19)
    nanos = int(m.group(1)[:9].ljust(9, b"0")) if m else 0
    return seconds * 1_000_000_000 + nanos


def split_message(message: bytes) -> tuple[int | None, bytes, bytes]:
    """(nanoseconds, stamp, payload) of a "<stamp> payload" message; (None, b"", message) if unstamped."""
    space = message.find(b" ", 0, 40)
    if space > 0:
        ns = parse_stamp(message[:space])
        if ns is not None:
            return ns, message[:space], message[space + 1 :]
    return None, b"", message


@dataclass(slots=True)
class LogLine:
    """One line of one container, ready to filter and render."""

    ts: int  # nanoseconds since the epoch (engine time)
    stamp: str  # the engine's own RFC 3339 stamp, shown as is
    source: int  # index of the service in the session's service list
    stream: int  # STDOUT or STDERR
    segments: list  # ansi.Segment list
    cut: int = 0  # bytes cut off the end (0: whole line)
    text: str = ""  # plain text (for filters)
    marks: list | None = None  # search hits to highlight: (start, end) in text


@dataclass(slots=True)
class LineRun:
    """Whole lines of one container and stream, already rendered for the page: each line is
    "<engine stamp> <message as HTML>", joined by newlines (a live flood travels as a few of these
    per read instead of one object per line)."""

    source: int
    stream: int
    html: str
    count: int
    ts: int  # engine time of the last line (nanoseconds)
    first_ts: int  # ... and of the first

    def since(self, after_ns: int) -> LineRun | None:
        """The lines newer than after_ns (stamps parsed one by one: only at a resume point)."""
        kept = []
        for line in self.html.split("\n"):
            ns = parse_stamp(line[:30].encode("ascii", "replace"))
            if ns is None or ns > after_ns:
                kept.append(line)
        if not kept:
            return None
        first = parse_stamp(kept[0][:30].encode("ascii", "replace")) or self.first_ts
        return LineRun(self.source, self.stream, "\n".join(kept), len(kept), self.ts, first)


# Bytes that need no work in a run of lines: all but C0 controls (TAB and the newline are fine),
# DEL, the HTML specials, and 0x9b (it ends U+009B, the one-character CSI, in UTF-8).
_PLAIN_BYTES = bytes(b for b in range(256) if (b >= 0x20 or b in (9, 10)) and b not in b"\x7f\x9b&<>\"'")


def render_run(data: bytes) -> str:
    """Joined ordinary messages ("<stamp> text\\n" each) to the page's lines ("<stamp> html" joined
    by newlines), each exactly as line_html() renders it: text escaped, ANSI styles to classes,
    other controls dropped. Whole-run string operations unless a line has a control character."""
    text = data[:-1].decode("utf-8", "replace")
    special = data.translate(None, _PLAIN_BYTES)
    if not special:
        return text
    controls = special.translate(None, b"&<>\"'")
    if not controls or (not controls.strip(b"\x9b") and "\x9b" not in text):
        return escape(text)
    out = []
    needs_work = ansi.NEEDS_WORK.search
    for line in text.split("\n"):
        if needs_work(line, 31):
            out.append(line[:31] + line_html(ansi.segments(line[31:])))
        else:
            out.append(escape(line))
    return "\n".join(out)


def decode(data: bytes) -> str:
    """Bytes of a line to text: invalid UTF-8 becomes U+FFFD, never an error."""
    return data.decode("utf-8", "replace")


class Assembler:
    """Joins one container's messages into lines, per stream, cutting each at LINE_LIMIT bytes."""

    def __init__(self, source: int, limit: int = LINE_LIMIT) -> None:
        self.source = source
        self.limit = limit
        self._partial: dict[int, tuple[int, bytes, bytearray, int]] = {}

    def feed(self, stream: int, message: bytes, fallback_ts: int = 0) -> LogLine | None:
        """Take one message; return the line it completes, or None while a long line continues."""
        ns, stamp, payload = split_message(message)
        ended = payload.endswith(b"\n")
        if ended:
            payload = payload[:-1]
        part = self._partial.get(stream)
        if part is None and ended:
            if len(payload) > self.limit:
                return self._line(ns, stamp, stream, payload[: self.limit], len(payload) - self.limit, fallback_ts)
            return self._line(ns, stamp, stream, payload, 0, fallback_ts)
        if part is None:
            part = (ns, stamp, bytearray(), 0)
        first_ns, first_stamp, buf, dropped = part
        room = self.limit - len(buf)
        if room > 0:
            buf += payload[:room]
            dropped += max(0, len(payload) - room)
        else:
            dropped += len(payload)
        if not ended:
            self._partial[stream] = (first_ns, first_stamp, buf, dropped)
            return None
        self._partial.pop(stream, None)
        return self._line(first_ns, first_stamp, stream, bytes(buf), dropped, fallback_ts)

    def feed_many(self, messages: list[tuple[int, bytes]], fallback_ts: int = 0) -> list[LogLine]:
        """The lines a batch of messages completes, in order.

        The common message (a whole short line with the engine's usual 30-byte stamp, no long line
        open) takes an inlined path: a few slices, one decode, one regex scan, one LogLine; anything
        else goes through feed()."""
        out: list[LogLine] = []
        append = out.append
        partial = self._partial
        source = self.source
        longest = self.limit + 32
        seconds = _SECONDS
        needs_work = ansi.NEEDS_WORK.search
        for stream, message in messages:
            # Indexing a bytes object gives an int (no allocation): the checks stay cheap.
            if (
                not partial
                and len(message) <= longest
                and message[-1] == 10
                and len(message) > 31
                and message[30] == 32
                and message[19] == 46
            ):
                secs = seconds.get(message[:19])
                if secs is not None:
                    try:
                        nanos = int(message[20:29])
                    except ValueError:
                        nanos = -1
                    if nanos >= 0:
                        text = message[31 : -2 if message[-2] == 13 else -1].decode("utf-8", "replace")
                        if needs_work(text):
                            segs = ansi.segments(text)
                            plain = ansi.plain(segs)
                        else:
                            segs = [(text, "")]
                            plain = text
                        append(
                            LogLine(
                                secs * 1_000_000_000 + nanos,
                                message[:30].decode("ascii"),
                                source,
                                stream,
                                segs,
                                0,
                                plain,
                            )
                        )
                        continue
            line = self.feed(stream, message, fallback_ts)
            if line is not None:
                append(line)
                fallback_ts = line.ts
        return out

    def feed_runs(self, runs: list[tuple[int, bytes, int]], fallback_ts: int = 0) -> list:
        """The lines a read's runs (app.engine.logs.split_runs) complete: a run of ordinary messages
        becomes one LineRun rendered in bulk; any other message, or a run that would end a long line
        still open on its stream, goes through feed() line by line (LogLines)."""
        out: list = []
        partial = self._partial
        source = self.source
        for stream, data, count in runs:
            if count and stream not in partial:
                first = parse_stamp(data[:30])
                last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
                last = parse_stamp(data[last_start : last_start + 30]) if last_start else first
                if first is not None and last is not None:
                    out.append(LineRun(source, stream, render_run(data), count, last, first))
                    fallback_ts = last
                    continue
            messages = [data] if count <= 1 else [piece + b"\n" for piece in data[:-1].split(b"\n")]
            for message in messages:
                line = self.feed(stream, message, fallback_ts)
                if line is not None:
                    out.append(line)
                    fallback_ts = line.ts
        return out

    def flush(self) -> list[LogLine]:
        """Lines still open when the stream ended (a last line without newline)."""
        out = []
        for stream, (ns, stamp, buf, dropped) in sorted(self._partial.items()):
            out.append(self._line(ns, stamp, stream, bytes(buf), dropped, 0))
        self._partial.clear()
        return out

    def _line(self, ns: int | None, stamp: bytes, stream: int, data: bytes, cut: int, fallback_ts: int) -> LogLine:
        if data.endswith(b"\r"):  # TTY line endings
            data = data[:-1]
        text = decode(data)
        segs = ansi.segments(text)
        return LogLine(
            ts=ns if ns is not None else fallback_ts,
            stamp=stamp.decode("ascii", "replace"),
            source=self.source,
            stream=stream,
            segments=segs,
            cut=cut,
            text=ansi.plain(segs),
        )
