"""The .log download: what `docker logs` prints for the same options, streamed, never held whole.

One container without a search is passed through message by message (byte-exact, timestamps
stripped unless asked for). Several containers are merged by engine time, each line prefixed with
its container's name as `docker compose logs` does.
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


def iter_download(
    containers: list[Any], streams: list[Stream], *, timestamps: bool, query: str = ""
) -> Iterator[bytes]:
    """Yield the file's bytes; closes every stream when done or when the client goes away."""
    line_filter = LineFilter(query)
    prefix = len(streams) > 1
    width = max((len(c.name) for c in containers), default=0)
    at_start = [True] * len(streams)
    try:
        merged = heapq.merge(*(_messages(i, s) for i, s in enumerate(streams)), key=lambda m: (m[0], m[1], m[2]))
        for _ns, index, _seq, message, payload in merged:
            if line_filter and line_filter.match(ansi.plain(ansi.segments(decode(payload.rstrip(b"\n"))))) is None:
                continue
            data = message if timestamps else payload
            if prefix and at_start[index]:
                data = containers[index].name.ljust(width).encode() + b"  | " + data
            at_start[index] = payload.endswith(b"\n")
            yield data
    finally:
        for s in streams:
            s.close()
