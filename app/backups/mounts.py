"""What a service keeps: its named volumes and bind folders, from `compose config --format json`."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("stop", "dump", "live", "skip")
LABEL = "stackpilot.backup"
# Databases that can give a consistent dump while running, by image name (the label overrides).
DUMPS = {
    "postgres": "postgres",
    "postgis": "postgres",
    "timescale": "postgres",
    "timescaledb": "postgres",  # timescale/timescaledb, timescaledb-ha
    "pgvector": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "percona": "mysql",
    "redis": "redis",
    "valkey": "redis",
}

FAMILY_NAMES = {"postgres": "Postgres", "mysql": "MySQL/MariaDB", "redis": "Redis"}


@dataclass(frozen=True)
class Mount:
    kind: str  # "volume" | "bind"
    name: str  # the compose volume key, or the bind's source path
    source: str  # the engine's volume name, or the host path
    target: str  # where the service sees it
    read_only: bool = False

    @property
    def label(self) -> str:
        return self.name if self.kind == "volume" else self.source


def service_mounts(config: dict, service: str) -> list[Mount]:
    """The service's named volumes and bind folders (tmpfs, anonymous volumes, sockets left out)."""
    spec = (config.get("services") or {}).get(service) or {}
    project = config.get("name", "")
    top = config.get("volumes") or {}
    found: list[Mount] = []
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict) or not v.get("source"):
            continue
        kind, source, target = v.get("type"), str(v["source"]), str(v.get("target", ""))
        read_only = bool(v.get("read_only"))
        if kind == "volume":
            entry = top.get(source) or {}
            if entry.get("external") and not entry.get("name"):
                real = source
            else:
                real = str(entry.get("name") or f"{project}_{source}")
            found.append(Mount("volume", source, real, target, read_only))
        elif kind == "bind" and source.startswith("/") and not read_only and not source.endswith(".sock"):
            # a read-only bind is an input (config, a script), not data the service keeps
            found.append(Mount("bind", source, source, target, read_only))
    return found


def image_family(image: str) -> str:
    """'postgres' for postgres:16, ghcr.io/x/postgis:15 ...; '' when not a known database."""
    last = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].lower()
    for key, family in DUMPS.items():
        if last == key or last.startswith(key + "-"):
            return family
    return ""


def consistency(labels: dict[str, str], image: str) -> tuple[str, str]:
    """(mode, why): the label when set, else dump for known databases, else stop."""
    wanted = (labels.get(LABEL) or "").strip().lower()
    if wanted in MODES:
        return wanted, f"label {LABEL}: {wanted}"
    family = image_family(image)
    if family:
        return "dump", f"{FAMILY_NAMES.get(family, family)} image: a dump while it runs"
    return "stop", "stopped for the copy, started again after"
