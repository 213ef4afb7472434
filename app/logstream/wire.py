"""What goes over the socket: compact JSON, log text already escaped and styled as HTML.

A batch is {"t": "batch", "items": [...]}; a line is [key_us, stamp, service_index, is_stderr, html];
anything else is an object: {"t": "skip", "n"}, {"t": "note", "kind", "text"},
{"t": "status", "state", "text"}. Notes and statuses are plain text for textContent.
"""

from __future__ import annotations

import json

from app.logstream.lines import STDERR
from app.logstream.lines import LogLine
from app.logstream.queue import Skipped
from app.logstream.render import line_html
from app.logstream.session import Notice
from app.logstream.session import Status


def _sorted_runs(batch: list) -> list:
    """Lines from several containers arrive per reader; order each run of lines by engine time."""
    out: list = []
    run: list = []
    for item in batch:
        if isinstance(item, LogLine):
            run.append(item)
            continue
        if run:
            run.sort(key=lambda ln: ln.ts)
            out.extend(run)
            run = []
        out.append(item)
    if run:
        run.sort(key=lambda ln: ln.ts)
        out.extend(run)
    return out


def encode_batch(batch: list) -> str:
    items: list = []
    for item in _sorted_runs(batch):
        if isinstance(item, LogLine):
            items.append(
                [
                    item.ts // 1000,
                    item.stamp,
                    item.source,
                    1 if item.stream == STDERR else 0,
                    line_html(item.segments, item.marks, item.cut),
                ]
            )
        elif isinstance(item, Skipped):
            items.append({"t": "skip", "n": item.count})
        elif isinstance(item, Notice):
            items.append({"t": "note", "kind": item.kind, "text": item.text})
        elif isinstance(item, Status):
            items.append({"t": "status", "state": item.state, "text": item.text})
    return json.dumps({"t": "batch", "items": items}, separators=(",", ":"), ensure_ascii=False)


def message(kind: str, **fields) -> str:
    """A single control message: hello, error (e.g. a bad search), full (too many views)."""
    return json.dumps({"t": kind, **fields}, separators=(",", ":"), ensure_ascii=False)
