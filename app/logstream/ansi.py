"""ANSI escape sequences to styled segments: SGR kept as CSS classes, everything else stripped.

Colours map to 16 classes (a-f0..a-f15, a-b0..a-b15): the page's CSP forbids style attributes,
so 256-colour and true-colour codes fall back to the nearest of the 16.
"""

from __future__ import annotations

import re

# One token: a CSI sequence, an OSC string, a two-byte escape, or a stray C0/DEL control (not TAB).
TOKEN = re.compile(
    r"\x1b\[([0-?]*)([ -/]*)([@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0a-\x1f\x7f\x9b]"
)
NEEDS_WORK = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x9b]")

PALETTE = [
    (0, 0, 0),
    (205, 49, 49),
    (13, 188, 121),
    (229, 229, 16),
    (36, 114, 200),
    (188, 63, 188),
    (17, 168, 205),
    (229, 229, 229),
    (102, 102, 102),
    (241, 76, 76),
    (35, 209, 139),
    (245, 245, 67),
    (59, 142, 234),
    (214, 112, 214),
    (41, 184, 219),
    (255, 255, 255),
]

Segment = tuple[str, str]  # (text, space-separated classes or "")


def _nearest(r: int, g: int, b: int) -> int:
    return min(range(16), key=lambda i: (PALETTE[i][0] - r) ** 2 + (PALETTE[i][1] - g) ** 2 + (PALETTE[i][2] - b) ** 2)


def _xterm256(n: int) -> int:
    if n < 16:
        return n
    if n < 232:
        n -= 16
        steps = (0, 95, 135, 175, 215, 255)
        return _nearest(steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return _nearest(level, level, level)


XTERM = [_xterm256(n) for n in range(256)]


class Style:
    """The SGR state of a line as it is being read."""

    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline", "strike")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.fg = self.bg = None
        self.bold = self.dim = self.italic = self.underline = self.strike = False

    def classes(self) -> str:
        out = []
        if self.fg is not None:
            out.append(f"a-f{self.fg}")
        if self.bg is not None:
            out.append(f"a-b{self.bg}")
        if self.bold:
            out.append("a-bold")
        if self.dim:
            out.append("a-dim")
        if self.italic:
            out.append("a-it")
        if self.underline:
            out.append("a-ul")
        if self.strike:
            out.append("a-st")
        return " ".join(out)

    def apply(self, params: str) -> None:
        # At most 3 digits: SGR codes are small, and int() of a huge digit string raises.
        codes = (
            [
                0 if not p else int(p) if p.isascii() and p.isdigit() and len(p) <= 3 else -1
                for p in re.split(r"[;:]", params)
            ]
            if params
            else [0]
        )
        i = 0
        while i < len(codes):
            c = codes[i]
            i += 1
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 9:
                self.strike = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif c == 29:
                self.strike = False
            elif 30 <= c <= 37:
                self.fg = c - 30
            elif 90 <= c <= 97:
                self.fg = c - 90 + 8
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = c - 40
            elif 100 <= c <= 107:
                self.bg = c - 100 + 8
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i < len(codes):
                mode = codes[i]
                colour = None
                if mode == 5 and i + 1 < len(codes):
                    colour = XTERM[codes[i + 1] % 256]
                    i += 2
                elif mode == 2 and i + 3 < len(codes):
                    colour = _nearest(*(min(255, v) for v in codes[i + 1 : i + 4]))
                    i += 4
                else:
                    i += 1
                if c == 38:
                    self.fg = colour
                else:
                    self.bg = colour


def segments(text: str) -> list[Segment]:
    """Split a decoded line into styled segments; non-SGR escapes and control characters vanish."""
    if "\x1b" not in text and not NEEDS_WORK.search(text):
        return [(text, "")]
    out: list[Segment] = []
    style = Style()
    classes = ""
    pos = 0
    for m in TOKEN.finditer(text):
        if m.start() > pos:
            out.append((text[pos : m.start()], classes))
        pos = m.end()
        if m.group(3) == "m" and not m.group(2):
            style.apply(m.group(1))
            classes = style.classes()
    if pos < len(text):
        out.append((text[pos:], classes))
    # Neighbours with the same style are one segment (fewer spans).
    merged: list[Segment] = []
    for seg in out:
        if merged and merged[-1][1] == seg[1]:
            merged[-1] = (merged[-1][0] + seg[0], seg[1])
        else:
            merged.append(seg)
    return merged


def plain(segs: list[Segment]) -> str:
    """The text a person reads (and a filter matches): the segments without their styles."""
    return segs[0][0] if len(segs) == 1 else "".join(s[0] for s in segs)
