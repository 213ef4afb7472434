"""Which named volumes exist: the .env editor warns before a database password changes once the
database's data volume exists (the database keeps the password it was created with)."""

from __future__ import annotations

from collections.abc import Iterable

from app.engine import Engine


def existing(engine: Engine, names: Iterable[str]) -> set[str]:
    """The subset of `names` that exist as volumes on the engine."""
    wanted = set(names)
    if not wanted:
        return set()
    found = engine.call(lambda c: [v.name for v in c.volumes.list()], what="volumes")
    return wanted & set(found)
