"""Segments to HTML: every character of log text is escaped here, on the server; the only markup
is ours (spans with a class, <mark> for search hits, a marker for cut lines)."""

from __future__ import annotations

from html import escape

from app.logstream.ansi import Segment


def line_html(segments: list[Segment], marks: list[tuple[int, int]] | None = None, cut: int = 0) -> str:
    """One line's message as HTML; marks are (start, end) offsets in the plain text."""
    if not marks and len(segments) == 1 and not segments[0][1]:
        out = escape(segments[0][0])
    else:
        out = _styled(segments, marks or [])
    if cut:
        out += f'<span class="cut">… [line cut: {cut:,} more bytes]</span>'
    return out


def _styled(segments: list[Segment], marks: list[tuple[int, int]]) -> str:
    parts = []
    offset = 0
    mi = 0
    for text, classes in segments:
        start, end = offset, offset + len(text)
        offset = end
        pieces = []
        pos = start
        while pos < end:
            while mi < len(marks) and marks[mi][1] <= pos:
                mi += 1
            if mi < len(marks) and marks[mi][0] <= pos:
                stop = min(end, marks[mi][1])
                pieces.append(f"<mark>{escape(text[pos - start : stop - start])}</mark>")
            else:
                stop = min(end, marks[mi][0]) if mi < len(marks) else end
                pieces.append(escape(text[pos - start : stop - start]))
            pos = stop
        inner = "".join(pieces)
        parts.append(f'<span class="{classes}">{inner}</span>' if classes else inner)
    return "".join(parts)
