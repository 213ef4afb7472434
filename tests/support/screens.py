"""Screenshots for people to look at: every scheme and width, only when STACKPILOT_SHOTS names a folder."""

from __future__ import annotations

import os
from pathlib import Path

SCHEMES = ("light", "dark")
WIDTHS = (390, 1280)


def shoot(page, name: str, height: int = 900) -> None:
    """Save <name>-<scheme>-<width>.png of the current page under $STACKPILOT_SHOTS (if set)."""
    shots = os.environ.get("STACKPILOT_SHOTS")
    if not shots:
        return
    folder = Path(shots)
    folder.mkdir(parents=True, exist_ok=True)
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(folder / f"{name}-{scheme}-{width}.png"), full_page=True, caret="initial")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})
