"""Rows of the service table: the compose model merged with live containers and stats samples.

Why here and not in a template: the state rules (a one-shot that exited 0 is "completed", a
service only in an inactive profile is "inactive", replicas fold into one row, "blocked by X")
are domain rules that the table, the graph and the tests must agree on.

API:
- ``build_rows(model, containers, samples, now=None, outdated=None, image_ids=None) -> list[Row]``:
  containers None means the engine is unreachable (every active service shows "unknown");
  ``outdated`` (services Compose would recreate for their configuration, app.stack.drift) and
  ``image_ids`` (image reference -> id now) mark drift.
- ``Row``: one per service; ``state`` (a key: running, restarting, paused, created, completed,
  stopped, exited, dead, not-created, inactive, unknown), ``word`` (what a person reads), ``tone``
  (ok|warn|bad|idle, for colour), ``health`` (healthy|unhealthy|starting|""), ``health_output`` and
  ``health_exit`` (the last check of the container that is not healthy: why), ``blocked_by`` (only
  dependencies whose depends_on condition is unmet while the service waits to start), ``drift``
  (("configuration", "image") subsets: the containers run what Compose would not create now),
  ``version`` (changes whenever anything the row shows changes: the table refresh swaps only
  rows whose version moved).
- ``sort_rows(rows, key)``, ``group_rows(rows, by) -> list[(group, rows)]``, ``counts(rows)``.
- ``human_bytes``, ``human_duration``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from functools import cached_property

from app.engine.containers import ContainerInfo
from app.engine.stats import Sample
from app.stack.model import ComposeModel
from app.stack.model import Port
from app.stack.model import Service

# Worst first: the state a folded service row shows is the most alarming of its containers.
_SEVERITY = [
    "dead",
    "restarting",
    "exited",
    "unhealthy",
    "paused",
    "created",
    "stopped",
    "starting",
    "running",
    "completed",
]
STATE_ORDER = [
    "restarting",
    "exited",
    "dead",
    "unknown",
    "paused",
    "created",
    "stopped",
    "not-created",
    "running",
    "completed",
    "inactive",
]
COUNT_LABELS = {
    "running": "running",
    "completed": "completed",
    "restarting": "restarting",
    "exited": "exited",
    "dead": "dead",
    "paused": "paused",
    "created": "created",
    "stopped": "stopped",
    "not-created": "not created",
    "inactive": "inactive",
    "unknown": "unknown",
}
SORT_KEYS = ("name", "state", "cpu", "memory", "uptime", "image")
SIGNAL_EXITS = {137, 143, 130}  # SIGKILL / SIGTERM / SIGINT: stopped by someone, not a crash


@dataclass(frozen=True)
class Row:
    name: str
    slug: str
    group: str
    state: str
    word: str
    tone: str
    health: str = ""
    image: str = ""
    ports: tuple[Port, ...] = ()
    uptime: float | None = None
    restarts: int = 0
    cpu: float | None = None
    mem_used: int | None = None
    mem_limit: int | None = None
    sample_at: float | None = None
    running: int = 0
    replicas: int = 1
    containers: tuple[str, ...] = ()
    blocked_by: tuple[str, ...] = ()
    active: bool = True
    one_shot: bool = False
    has_healthcheck: bool = False
    depends_on: tuple[str, ...] = field(default_factory=tuple)
    health_output: str = ""
    health_exit: int | None = None
    drift: tuple[str, ...] = ()
    exit_codes: tuple[int, ...] = ()  # of exited containers: service_completed_successfully wants 0

    @cached_property
    def health_why(self) -> str:
        """The last healthcheck's result in words, for a service that is not healthy."""
        if self.health not in ("unhealthy", "starting") or (self.health_exit is None and not self.health_output):
            return ""
        code = f"exit code {self.health_exit}" if self.health_exit is not None else "no exit code"
        return f"{code}: {self.health_output}" if self.health_output else code

    @cached_property
    def drift_text(self) -> str:
        if not self.drift:
            return ""
        return "runs an older " + " and ".join(self.drift) + "; recreate to apply the current one"

    @cached_property
    def uptime_text(self) -> str:
        return human_duration(self.uptime) if self.uptime is not None else ""

    @cached_property
    def cpu_text(self) -> str:
        return f"{self.cpu:.1f} %" if self.cpu is not None else ""

    @cached_property
    def mem_text(self) -> str:
        if self.mem_used is None:
            return ""
        limit = f" / {human_bytes(self.mem_limit)}" if self.mem_limit else ""
        return f"{human_bytes(self.mem_used)}{limit}"

    @cached_property
    def version(self) -> str:
        shown = (
            self.group,
            self.state,
            self.word,
            self.tone,
            self.health,
            self.image,
            tuple(p.label for p in self.ports),
            self.uptime_text,
            self.restarts,
            self.cpu_text,
            self.mem_text,
            self.running,
            self.replicas,
            self.blocked_by,
            self.health_why,
            self.drift,
        )
        return hashlib.blake2s(repr(shown).encode(), digest_size=5).hexdigest()


def slug(name: str) -> str:
    """An HTML id fragment for a service name; names that would need escaping get a hash suffix."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if clean != name:
        clean += "-" + hashlib.blake2s(name.encode(), digest_size=3).hexdigest()
    return clean


def human_bytes(n: float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def container_state(c: ContainerInfo, service: Service) -> str:
    """One container's state key, with the one-shot and stopped-by-signal rules applied."""
    if c.state == "exited":
        if c.exit_code == 0:
            return (
                "stopped" if service.restart in ("always", "unless-stopped") and not service.one_shot else "completed"
            )
        if c.exit_code in SIGNAL_EXITS:
            return "stopped"
        return "exited"
    if c.state == "running" and c.health in ("unhealthy", "starting"):
        return c.health
    if c.state == "removing":
        return "dead"
    return c.state if c.state in _SEVERITY else "dead"


def _word(state: str, c: ContainerInfo | None) -> tuple[str, str]:
    if state == "exited":
        return f"exited (code {c.exit_code})" if c and c.exit_code is not None else "exited", "bad"
    if state == "stopped":
        code = f" (code {c.exit_code})" if c and c.exit_code not in (None, 0) else ""
        return f"stopped{code}", "idle"
    return {
        "running": ("running", "ok"),
        "unhealthy": ("running", "ok"),
        "starting": ("running", "ok"),
        "completed": ("completed", "ok"),
        "restarting": ("restarting", "bad"),
        "dead": ("dead", "bad"),
        "paused": ("paused", "warn"),
        "created": ("created", "idle"),
    }.get(state, (state, "idle"))


def _row(
    service: Service, mine: list[ContainerInfo], samples: Mapping[str, Sample], now: float, engine_up: bool
) -> Row:
    base = dict(
        name=service.name,
        slug=slug(service.name),
        group=service.group,
        image=service.image,
        ports=service.ports,
        replicas=service.replicas,
        active=service.active,
        one_shot=service.one_shot,
        has_healthcheck=service.has_healthcheck,
        depends_on=tuple(d.service for d in service.depends_on),
    )
    if not service.active and not mine:
        return Row(state="inactive", word="inactive profile", tone="idle", **base)
    if not engine_up:
        return Row(state="unknown", word="unknown", tone="idle", **base)
    if not mine:
        return Row(state="not-created", word="not created", tone="idle", **base)
    states = [(container_state(c, service), c) for c in mine]
    worst_state, worst = min(states, key=lambda sc: _SEVERITY.index(sc[0]))
    running = [c for c in mine if c.state == "running"]
    state = "running" if worst_state in ("unhealthy", "starting") else worst_state
    word, tone = _word(worst_state, worst)
    if len(mine) > 1:
        word = (
            f"{word} {len(running)}/{len(mine)}"
            if state != "running" or len(running) < len(mine)
            else f"running {len(running)}/{len(mine)}"
        )
    healths = [c.health for c in running if c.health]
    health = next((h for h in ("unhealthy", "starting", "healthy") if h in healths), "")
    why = next((c for c in running if c.health == health), None) if health in ("unhealthy", "starting") else None
    # A paused container is still up: its uptime counts too.
    uptimes = [u for c in mine if c.state in ("running", "paused") and (u := c.uptime(now)) is not None]
    picked = [samples[c.id] for c in running if c.id in samples]
    cpus = [s.cpu_percent for s in picked if s.cpu_percent is not None]
    return Row(
        state=state,
        word=word,
        tone=tone,
        health=health,
        uptime=min(uptimes) if uptimes else None,
        restarts=sum(c.restart_count for c in mine),
        cpu=sum(cpus) if cpus else None,
        mem_used=sum(s.mem_used for s in picked) if picked else None,
        mem_limit=service.memory if picked else None,  # the host's memory is no limit worth showing
        sample_at=min(s.at for s in picked) if picked else None,
        running=len(running),
        containers=tuple(c.name for c in mine),
        health_output=why.health_output if why else "",
        health_exit=why.health_exit if why else None,
        exit_codes=tuple(c.exit_code for c in mine if c.state == "exited" and c.exit_code is not None),
        **{**base, "image": worst.image or service.image},
    )


def _satisfied(dep_row: Row, condition: str) -> bool:
    """Compose's own rule for a depends_on condition, read from the dependency's row."""
    if condition == "service_healthy":
        return dep_row.state == "running" and dep_row.health == "healthy"
    if condition == "service_completed_successfully":
        return dep_row.state == "completed" or (bool(dep_row.exit_codes) and set(dep_row.exit_codes) == {0})
    return dep_row.state in ("running", "completed")


WAITING = ("created", "not-created")  # states of a service that has not started (yet)
BROKEN = ("exited", "dead", "restarting")


def _blocks(row: Row, dep_row: Row, condition: str) -> bool:
    """A dependency blocks a service only when the service has not started and the dependency
    does not meet the condition: a created container waits on it; a service never created is
    blocked only by a broken dependency (a stack that is simply down blocks nothing). A service
    that runs is blocked by nothing, whatever its dependencies do now."""
    if row.state not in WAITING or _satisfied(dep_row, condition):
        return False
    return row.state == "created" or dep_row.state in BROKEN or dep_row.health == "unhealthy"


def _drift(
    service: Service, mine: list[ContainerInfo], outdated: Collection[str], image_ids: Mapping[str, str]
) -> tuple[str, ...]:
    """What differs between the service's containers and what Compose would create now."""
    reasons = []
    if mine and service.name in outdated:
        reasons.append("configuration")
    if any(c.image_id and image_ids.get(c.image) and image_ids[c.image] != c.image_id for c in mine):
        reasons.append("image")
    return tuple(reasons)


def build_rows(
    model: ComposeModel,
    containers: Iterable[ContainerInfo] | None,
    samples: Mapping[str, Sample] | None = None,
    now: float | None = None,
    outdated: Collection[str] | None = None,
    image_ids: Mapping[str, str] | None = None,
) -> list[Row]:
    """One Row per service of the model (containers of unknown services are ignored)."""
    now = now or time.time()
    samples = samples or {}
    by_service: dict[str, list[ContainerInfo]] = {}
    for c in containers or ():
        by_service.setdefault(c.service, []).append(c)
    rows = {
        name: _row(svc, by_service.get(name, []), samples, now, containers is not None)
        for name, svc in model.services.items()
    }
    if containers is None:
        return list(rows.values())
    for name, svc in model.services.items():
        row = rows[name]
        changes: dict = {}
        if svc.active and (outdated or image_ids):
            drift = _drift(svc, by_service.get(name, []), outdated or (), image_ids or {})
            if drift:
                changes["drift"] = drift
        if svc.active:
            blocked = [
                dep.service
                for dep in svc.depends_on
                if (dep_row := rows.get(dep.service)) is not None
                and dep_row.active
                and _blocks(row, dep_row, dep.condition)
            ]
            if blocked:
                changes["blocked_by"] = tuple(blocked)
        if changes:
            rows[name] = replace(row, **changes)
    return list(rows.values())


def sort_rows(rows: list[Row], key: str = "name") -> list[Row]:
    """Rows sorted by name, state (worst first), cpu/memory/uptime (largest first) or image."""
    if key == "state":
        rank = {s: i for i, s in enumerate(STATE_ORDER)}
        return sorted(rows, key=lambda r: (rank.get(r.state, 99), r.name))
    if key == "cpu":
        return sorted(rows, key=lambda r: (-(r.cpu or 0.0), r.name))
    if key == "memory":
        return sorted(rows, key=lambda r: (-(r.mem_used or 0), r.name))
    if key == "uptime":
        return sorted(rows, key=lambda r: (-(r.uptime or 0.0), r.name))
    if key == "image":
        return sorted(rows, key=lambda r: (r.image, r.name))
    return sorted(rows, key=lambda r: r.name)


def group_rows(rows: list[Row], by: str = "group") -> list[tuple[str, list[Row]]]:
    """(group name, rows) in a stable order: the core group ("") first, inactive rows last."""
    if by != "group":
        return [("", rows)]
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)

    def order(name: str) -> tuple:
        members = groups[name]
        all_inactive = all(r.state == "inactive" for r in members)
        return (all_inactive, name != "", name)

    return [(name, groups[name]) for name in sorted(groups, key=order)]


def counts(rows: Iterable[Row]) -> list[tuple[str, str, int]]:
    """(state key, label, number) for every state present, in STATE_ORDER."""
    found = Counter(r.state for r in rows)
    return [(s, COUNT_LABELS.get(s, s), found[s]) for s in STATE_ORDER if found[s]]
