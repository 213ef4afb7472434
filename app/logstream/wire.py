"""What goes over the socket: log lines in compact text frames, everything else as compact JSON.

Lines travel as an "L" frame: `L` + a JSON list of groups `[service_index, is_stderr, count]` + a
newline, then one line per row, `<engine stamp> <message as HTML>`, rows joined by newlines (log text
never holds a newline; it is escaped and styled on the server, so the browser only splits). A flood
costs a few bulk string joins per frame, not a JSON value per line, and a client counts lines
without parsing them.
Anything else is JSON: {"t": "batch", "items": [...]} with {"t": "skip", "n"}, {"t": "note", "kind",
"text"}, {"t": "status", "state", "text"} in stream order between the line frames, and single
control messages (hello, error, full). Notes and statuses are plain text for textContent.
"""

from __future__ import annotations

import json

from app.logstream.lines import STDERR
from app.logstream.lines import LineRun
from app.logstream.lines import LogLine
from app.logstream.lines import parse_stamp
from app.logstream.queue import Skipped
from app.logstream.render import line_html
from app.logstream.session import Notice
from app.logstream.session import Status

FRAME_BYTES = 256 * 1024  # a frame of lines ends after about this much text


def _row(line: LogLine) -> str:
    return f"{line.stamp} {line_html(line.segments, line.marks, line.cut)}"


def _lines_frame(items: list) -> str:
    """One L frame of LineRuns and LogLines (consecutive in the queue)."""
    groups: list[list[int]] = []
    rows: list[str] = []
    if len({item.source for item in items}) > 1:
        # Several containers' readers: interleave by engine time (stable: each one's order stays).
        keyed = []
        for item in items:
            err = 1 if item.stream == STDERR else 0
            if item.__class__ is LineRun:
                for row in item.html.split("\n"):
                    keyed.append((parse_stamp(row[:30].encode("ascii", "replace")) or item.ts, item.source, err, row))
            else:
                keyed.append((item.ts, item.source, err, _row(item)))
        keyed.sort(key=lambda k: k[0])
        for _ts, source, err, row in keyed:
            if groups and groups[-1][0] == source and groups[-1][1] == err:
                groups[-1][2] += 1
            else:
                groups.append([source, err, 1])
            rows.append(row)
    else:
        for item in items:
            err = 1 if item.stream == STDERR else 0
            if item.__class__ is LineRun:
                rows.append(item.html)
                count = item.count
            else:
                rows.append(_row(item))
                count = 1
            if groups and groups[-1][1] == err:
                groups[-1][2] += count
            else:
                groups.append([item.source, err, count])
    return "L" + json.dumps(groups, separators=(",", ":")) + "\n" + "\n".join(rows)


def _control(item) -> dict | None:
    if isinstance(item, Skipped):
        return {"t": "skip", "n": item.count}
    if isinstance(item, Notice):
        return {"t": "note", "kind": item.kind, "text": item.text}
    if isinstance(item, Status):
        return {"t": "status", "state": item.state, "text": item.text}
    return None


def encode_batch(batch: list) -> list[str]:
    """The frames for a batch taken from the queue, in order: line frames and control batches."""
    frames: list[str] = []
    lines: list = []
    size = 0
    controls: list = []
    for item in batch:
        if item.__class__ is LineRun or item.__class__ is LogLine:
            if controls:
                frames.append(json.dumps({"t": "batch", "items": controls}, separators=(",", ":"), ensure_ascii=False))
                controls = []
            lines.append(item)
            size += len(item.html) if item.__class__ is LineRun else 128
            if size >= FRAME_BYTES:
                frames.append(_lines_frame(lines))
                lines = []
                size = 0
            continue
        control = _control(item)
        if control is None:
            continue
        if lines:
            frames.append(_lines_frame(lines))
            lines = []
            size = 0
        controls.append(control)
    if lines:
        frames.append(_lines_frame(lines))
    if controls:
        frames.append(json.dumps({"t": "batch", "items": controls}, separators=(",", ":"), ensure_ascii=False))
    return frames


def message(kind: str, **fields) -> str:
    """A single control message: hello, error (e.g. a bad search), full (too many views)."""
    return json.dumps({"t": kind, **fields}, separators=(",", ":"), ensure_ascii=False)
