"""Down -v and volume deletion: which volumes' last backup failed (issue 15).

A volume's last backup is the newest finished backup whose scope covered a service mounting it (the
whole stack, or that service); safety copies taken before a restore do not count. Deleting a volume
whose last backup failed needs its name typed: the only copy of its data may be the volume itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.backups.mounts import service_mounts
from app.backups.store import Manifest
from app.errors import InvalidInput


def volume_services(config: dict) -> dict[str, set[str]]:
    """Engine volume name -> the services mounting it."""
    found: dict[str, set[str]] = {}
    for service in config.get("services") or {}:
        for mount in service_mounts(config, service):
            if mount.kind == "volume":
                found.setdefault(mount.source, set()).add(service)
    return found


def last_status(config: dict, manifests: Iterable[Manifest]) -> dict[str, str]:
    """Engine volume name -> status of its last backup (ok|failed); volumes never backed up are absent."""
    done = [m for m in manifests if m.status in ("ok", "failed") and not m.scope.startswith("safety:")]
    done.sort(key=lambda m: m.id, reverse=True)
    status: dict[str, str] = {}
    for volume, services in volume_services(config).items():
        for m in done:
            if m.scope == "all" or m.scope in services:
                status[volume] = m.status
                break
    return status


def failed_volumes(config: dict, manifests: Iterable[Manifest]) -> list[str]:
    return sorted(v for v, s in last_status(config, manifests).items() if s == "failed")


def check_typed(failed: list[str], typed: str) -> None:
    """Refuse unless every failed volume's name is among the typed names (space or comma separated)."""
    names = set(typed.replace(",", " ").split())
    missing = [v for v in failed if v not in names]
    if missing:
        raise InvalidInput(
            f"The last backup of {', '.join(missing)} failed, so its data may exist nowhere else. "
            "Type the volume's name to delete it anyway, or tick “Back up first”."
        )
