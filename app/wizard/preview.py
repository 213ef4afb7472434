"""The stack as Compose will see it once the wizard's `.env` is written, without writing it.

Why: with no `.env` yet (the wizard is what writes it), `docker compose config` fails on
`${VAR:?}` or on `env_file: .env`, and the preflight would show an opaque Compose error for a
file we are about to create. A preview folder beside the real one holds a symlink to every entry
of the stack folder and the draft `.env`; Compose reads that folder (same folder name, so the
default project name is the same) and paths it prints are mapped back to the real folder.
Nothing is written to the stack folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.stack import Stack


@contextmanager
def draft_stack(stack: Stack, env_bytes: bytes | None) -> Iterator[Stack]:
    """`stack`, or a preview of it whose `.env` holds env_bytes (removed on exit)."""
    current = stack.env_path.read_bytes() if stack.env_path.is_file() else None
    if env_bytes is None or env_bytes == current:
        yield stack
        return
    tmp = Path(tempfile.mkdtemp(prefix="stackpilot-preview-"))
    try:
        shadow = tmp / stack.directory.name
        shadow.mkdir()
        for entry in stack.directory.iterdir():
            if entry.name != ".env":
                (shadow / entry.name).symlink_to(entry)
        (shadow / ".env").write_bytes(env_bytes)
        yield stack.with_changes(directory=shadow)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def real_path(path: str, preview: Stack, stack: Stack) -> str:
    """A path Compose printed for the preview, as it is in the real stack folder."""
    root = str(preview.directory)
    if path == root or path.startswith(root + "/"):
        return str(stack.directory) + path[len(root) :]
    return path
