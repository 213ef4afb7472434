"""Screenshots for issue 15's closing note: wide (1400 px), narrow (390 px) and dark (1400 px), saved
as <prefix><name>-{wide,narrow,dark}.png under $STACKPILOT_SHOTS, only when that names a folder."""

from __future__ import annotations

import os
from pathlib import Path

VIEWS = (("wide", 1400, "light"), ("narrow", 390, "light"), ("dark", 1400, "dark"))


def shoot_three(page, name: str, height: int = 900, prefix: str = "15-", settle=None) -> None:
    """`settle(page)` runs after each change of size or scheme (e.g. wait for a refit)."""
    shots = os.environ.get("STACKPILOT_SHOTS")
    if not shots:
        return
    folder = Path(shots)
    folder.mkdir(parents=True, exist_ok=True)
    for label, width, scheme in VIEWS:
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": width, "height": height})
        if settle is not None:
            settle(page)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(folder / f"{prefix}{name}-{label}.png"), full_page=True, caret="initial")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})
