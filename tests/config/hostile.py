"""Hostile values for the .env writer: every character class Compose treats specially, alone and
mixed, at the start, the middle and the end of a value."""

from __future__ import annotations

import itertools
import random

ATOMS = [
    "",
    " ",
    "  ",
    "\t",
    "'",
    '"',
    "\\",
    "\\\\",
    "$",
    "$$",
    "${X}",
    "$X",
    "${X:-d}",
    "${",
    "}",
    "#",
    " #",
    "# ",
    "=",
    "\n",
    "\r",
    "\r\n",
    "\\n",
    "\\r",
    "\\t",
    "\\'",
    '\\"',
    "\\$",
    "\\0101",
    "é",
    "日本",
    "\u00a0",
    "\u0085",
    "\u2028",
    "emoji🙂",
    "`cmd`",
    "$(cmd)",
    "a",
    "B=1",
    "export C=2",
    "\nD=3",
    "' E=4",
    '" F=5',
    "\\\n",
    "&&",
    ";",
    "|",
    "*",
    "?",
    "~",
    "%",
    "@",
    "!",
]


def hostile_values(count: int = 400, seed: int = 4) -> list[str]:
    """A deterministic list of `count` distinct hostile values."""
    rng = random.Random(seed)
    values = list(dict.fromkeys(ATOMS + ["".join(p) for p in itertools.product(["a", "'", "\\", "$"], repeat=2)]))
    for a, b in itertools.product(["x", "'", '"', "\\", "$"], ["#", "\n", " ", "\\", "${X}"]):
        values.append(a + b)
        values.append(b + a)
        values.append(a + b + a)
    while len(values) < count * 2:
        values.append("".join(rng.choice(ATOMS) for _ in range(rng.randint(2, 6))))
    out = list(dict.fromkeys(values))
    return out[:count]
