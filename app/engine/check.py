"""The admin's "check" of an engine: what works, in words, one line per step.

Steps stop at the first that fails (a later one could only repeat the reason): SSH login (ssh
engines), reaching the API, the engine's version, permission to list containers and images, and
whether the Compose CLI here reaches it with the environment a stack's actions will use. A last
line names the limits of a remote engine honestly.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine import Engine
from app.engine.remote import RemoteEngine
from app.engine.remote import SSHEngine
from app.errors import StackpilotError

COMPOSE_PROBE_TIMEOUT = 20


@dataclass(frozen=True)
class Finding:
    """One step of a check: ok True (works), False (fails: detail says why), None (not tried / a note)."""

    ok: bool | None
    title: str
    detail: str = ""


def check(
    engine: Engine, compose_command: Sequence[str] = (), compose_env: dict[str, str] | None = None
) -> list[Finding]:
    """Run every step against the real engine (bypassing its backoff: the admin asked now)."""
    engine.reset()
    found: list[Finding] = []
    steps = ["Reached", "Version", "Permission", "Compose"]
    if isinstance(engine, SSHEngine):
        ok, text = engine.preflight()
        if not ok:
            return [Finding(False, "SSH login", text), *_not_tried(steps), *limits(engine)]
        key = engine.host_key()
        found.append(
            Finding(
                True,
                "SSH login",
                f"as {engine.user or 'the default user'} on {engine.host}; the "
                f"remote docker CLI answers (engine {text})" + (f"; host key {key}" if key else ""),
            )
        )
    t0 = time.monotonic()
    try:
        engine.call(lambda c: c.api.ping())
    except StackpilotError as e:
        return [*found, Finding(False, "Reached", e.message), *_not_tried(steps[1:]), *limits(engine)]
    found.append(Finding(True, "Reached", f"in {(time.monotonic() - t0) * 1000:.0f} ms {_via(engine)}"))
    try:
        v = engine.call(lambda c: c.api.version())
        info = engine.call(lambda c: c.api.info())
    except StackpilotError as e:
        return [*found, Finding(False, "Version", e.message), *_not_tried(steps[2:]), *limits(engine)]
    extras = [
        x
        for x in (
            "rootless" if "rootless" in str(info.get("SecurityOptions")) else "",
            "Swarm manager" if (info.get("Swarm") or {}).get("ControlAvailable") else "",
        )
        if x
    ]
    found.append(
        Finding(
            True,
            "Version",
            f"Docker Engine {v.get('Version', '?')} (API {v.get('ApiVersion', '?')}), "
            f"{v.get('Os', '?')}/{v.get('Arch', '?')} on {info.get('Name') or '?'}"
            + (f", {', '.join(extras)}" if extras else ""),
        )
    )
    try:
        containers = engine.call(lambda c: c.api.containers(all=True))
        images = engine.call(lambda c: c.api.images())
    except StackpilotError as e:
        return [*found, Finding(False, "Permission", e.message), *_not_tried(steps[3:]), *limits(engine)]
    running = sum(1 for c in containers if c.get("State") == "running")
    found.append(
        Finding(
            True, "Permission", f"may list containers ({len(containers)}, {running} running) and images ({len(images)})"
        )
    )
    found.append(compose_reaches(compose_command, compose_env if compose_env is not None else engine.compose_env()))
    return [*found, *limits(engine)]


def compose_reaches(command: Sequence[str], env: dict[str, str]) -> Finding:
    """Whether `compose ls` with a stack's environment reaches the engine (the CLI's own transport)."""
    if not command:
        return Finding(None, "Compose", "not checked: no Compose CLI found here")
    try:
        done = subprocess.run(
            [*command, "ls", "--all", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=COMPOSE_PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return Finding(False, "Compose", f"{command[0]} is not installed here")
    except subprocess.TimeoutExpired:
        return Finding(False, "Compose", f"`compose ls` did not finish within {COMPOSE_PROBE_TIMEOUT} s")
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        return Finding(False, "Compose", f"the Compose CLI cannot reach it: {(lines or ['no output'])[-1][:300]}")
    try:
        projects = json.loads(done.stdout or "[]")
    except ValueError:
        projects = []
    return Finding(
        True,
        "Compose",
        f"the Compose CLI reaches it with the stack environment "
        f"({len(projects)} project{'s' if len(projects) != 1 else ''} there)",
    )


def limits(engine: Engine) -> list[Finding]:
    """What a remote engine changes for a stack, said before anyone finds out the hard way."""
    if not isinstance(engine, RemoteEngine):
        return []
    host = engine.host
    return [
        Finding(
            None,
            "Limits",
            f"Compose reads the stack's files here and sends {host} the result: bind "
            f"mounts (./data included, made absolute from the folder here) name folders on {host}, "
            "which must exist there; named volumes, images and logs live there; build contexts are "
            "uploaded from here.",
        )
    ]


def _via(engine: Engine) -> str:
    return {"tcp": "over TLS", "ssh": "over SSH"}.get(engine.kind, "through the local socket")


def _not_tried(steps: Sequence[str]) -> list[Finding]:
    return [Finding(None, s, "not tried") for s in steps]
