"""The .log download: what `docker logs` prints for the same options, streamed, never held whole.

One container without a search is passed through message by message (byte-exact, timestamps
stripped unless asked for). Several containers are merged by engine time, each line prefixed with
the service's name as the page names it (with the replica number where a service has several), the
way `docker compose logs` prefixes lines.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from app.logstream import ansi
from app.logstream.filters import LineFilter
from app.logstream.lines import decode
from app.logstream.lines import split_message
from app.logstream.session import Stream


def _messages(index: int, stream: Stream) -> Iterator[tuple[int, int, bytes, bytes]]:
    seq = 0
    last = 0
    for _kind, message in stream.messages():
        ns, _stamp, payload = split_message(message)
        last = ns if ns is not None else last
        seq += 1
        yield last, index, seq, message, payload


def line_names(containers: list[Any]) -> list[str]:
    """The prefix of each container's lines: its service, plus the replica number when a service
    runs several containers (container names carry the project, which the page never shows)."""
    replicas: dict[str, int] = {}
    for c in containers:
        replicas[c.service] = replicas.get(c.service, 0) + 1
    return [f"{c.service}-{c.number}" if replicas[c.service] > 1 else c.service for c in containers]


def iter_download(
    containers: list[Any], streams: list[Stream], *, timestamps: bool, query: str = ""
) -> Iterator[bytes]:
    """Yield the file's bytes; closes every stream when done or when the client goes away."""
    line_filter = LineFilter(query)
    prefix = len(streams) > 1
    names = line_names(containers)
    width = max((len(n) for n in names), default=0)
    at_start = [True] * len(streams)
    try:
        merged = heapq.merge(*(_messages(i, s) for i, s in enumerate(streams)), key=lambda m: (m[0], m[1], m[2]))
        for _ns, index, _seq, message, payload in merged:
            if line_filter and line_filter.match(ansi.plain(ansi.segments(decode(payload.rstrip(b"\n"))))) is None:
                continue
            data = message if timestamps else payload
            if prefix and at_start[index]:
                data = names[index].ljust(width).encode() + b"  | " + data
            at_start[index] = payload.endswith(b"\n")
            yield data
    finally:
        for s in streams:
            s.close()
