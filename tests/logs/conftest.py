"""Stacks whose containers print known lines, and a reader for the log socket's messages."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support.live import wait_for

TALK = r"""
printf 'plain line one\n'
printf '\033[31mred text\033[0m and \033[1;32mbold green\033[0m\n'
printf '<script>alert(1)</script> & "quotes"\n'
printf 'bad utf8: \377\376 end\n'
printf 'cursor\033[2Kmove\033]0;title\007 done\n'
echo 'to stderr' >&2
head -c 102400 /dev/zero | tr '\0' 'y'; echo
printf 'after long\n'
echo READY
exec sleep 3600
"""

TICK = r"""
i=0
while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done
"""

CHORUS = r"""
sleep "$OFFSET"
for i in 1 2 3 4; do echo "$SVC line $i"; sleep 0.3; done
echo "$SVC done"
exec sleep 3600
"""

COMPOSE_TALKER = """
services:
  talker:
    image: {image}
    pull_policy: never
    command: ["sh", "/talk.sh"]
    volumes: ["./talk.sh:/talk.sh:ro"]
    stop_grace_period: 1s
"""

COMPOSE_TICKER = """
services:
  ticker:
    image: {image}
    pull_policy: never
    command: ["sh", "/tick.sh"]
    volumes: ["./tick.sh:/tick.sh:ro"]
    stop_grace_period: 1s
"""

COMPOSE_CHORUS = """
services:
""" + "".join(
    f"""
  {name}:
    image: {{image}}
    pull_policy: never
    command: ["sh", "/chorus.sh"]
    environment: {{SVC: {name}, OFFSET: "{offset}"}}
    volumes: ["./chorus.sh:/chorus.sh:ro"]
    stop_grace_period: 1s
"""
    for name, offset in (("alpha", "0"), ("bravo", "0.1"), ("charlie", "0.2"))
)


def container_logs(project, service: str, *args: str) -> str:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={project.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cid = out.stdout.split()[0]
    return subprocess.run(["docker", "logs", *args, cid], capture_output=True, text=True).stdout


def up(project, ready: str | None, service: str) -> None:
    project.compose("up", "-d", "--no-build")
    if ready:
        wait_for(lambda: ready in container_logs(project, service), timeout=20, message=f"{ready} in logs")


@pytest.fixture
def talker(make_stack):
    proj = make_stack({"docker-compose.yml": COMPOSE_TALKER, "talk.sh": TALK}, name="talk")
    up(proj, "READY", "talker")
    return proj


@pytest.fixture
def ticker(make_stack):
    proj = make_stack({"docker-compose.yml": COMPOSE_TICKER, "tick.sh": TICK}, name="tick")
    up(proj, "tick 2", "ticker")
    return proj


@pytest.fixture
def chorus(make_stack):
    proj = make_stack({"docker-compose.yml": COMPOSE_CHORUS, "chorus.sh": CHORUS}, name="chorus")
    up(proj, None, "alpha")
    for name in ("alpha", "bravo", "charlie"):
        wait_for(lambda n=name: f"{n} done" in container_logs(proj, n), timeout=20, message=f"{name} done")
    return proj


@pytest.fixture
def logs_server(server_factory):
    """Factory: a live server managing proj (its project name aligned with the fixture's)."""

    def factory(proj, **env):
        from pathlib import Path

        from app.store import Store

        server = server_factory(stack_dir=proj.dir, **env)
        Store(Path(server.data_dir) / "stackpilot.sqlite3").set_setting(
            "stack", {"project": proj.project, "files": [], "profiles": []}
        )
        return server

    return factory


def lines_of(frame: str) -> list[list]:
    """An L frame (app/logstream/wire.py) as [key_us, stamp, service, is_err, html] rows."""
    from app.logstream.lines import parse_stamp

    head, _, body = frame.partition("\n")
    rows = body.split("\n")
    out = []
    for service, err, count in json.loads(head[1:]):
        for row in rows[len(out) : len(out) + count]:
            stamp, _, html = row.partition(" ")
            ns = parse_stamp(stamp.encode()) if stamp else None
            out.append([ns // 1000 if ns is not None else 0, stamp, service, err, html])
    assert len(out) == len(rows), "an L frame's groups do not add up to its rows"
    return out


class Reader:
    """Collects what the log socket sends: lines, notes, statuses, control messages."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.messages: list[dict] = []
        self.lines: list[list] = []  # [key, stamp, service, is_err, html]
        self.events: list[dict] = []  # notes, skips and statuses in order
        self.closed = False

    def pump(self, timeout: float = 0.2) -> None:
        from simple_websocket import ConnectionClosed

        try:
            raw = self.ws.receive(timeout=timeout)
        except ConnectionClosed:
            self.closed = True
            return
        if raw is None:
            if not self.ws.connected:
                self.closed = True
            return
        if raw.startswith("L"):
            self.messages.append({"t": "lines"})
            self.lines.extend(lines_of(raw))
            return
        msg = json.loads(raw)
        self.messages.append(msg)
        if msg["t"] == "batch":
            for item in msg["items"]:
                if isinstance(item, list):
                    self.lines.append(item)
                else:
                    self.events.append(item)

    def until(self, predicate, timeout: float = 15.0, message: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = predicate(self)
            if got:
                return got
            if self.closed:
                break
            self.pump()
        got = predicate(self)
        if got:
            return got
        raise AssertionError(
            f"timed out waiting for {message}; lines={[line[4][:80] for line in self.lines[-10:]]} "
            f"events={self.events[-10:]} messages={[m['t'] for m in self.messages[-5:]]}"
        )

    def html(self) -> list[str]:
        return [line[4] for line in self.lines]

    def ended(self) -> bool:
        return any(e.get("t") == "status" and e.get("state") == "ended" for e in self.events)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
