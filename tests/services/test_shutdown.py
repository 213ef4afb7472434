"""Stopping Stackpilot mid-action stops the Compose run it owns and still audits it."""

import signal
import subprocess
from pathlib import Path

import pytest

from app.store import Store
from tests.support.live import wait_for

pytestmark = pytest.mark.docker

SLOW_STOP = """\
services:
  web:
    image: {image}
    pull_policy: never
    # sh as PID 1 ignores SIGTERM: `stop` waits the whole grace period.
    command: ["sh", "-c", "while true; do sleep 1; done"]
    stop_grace_period: 60s
"""


def compose_processes(project: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "docker-compose"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if project in line]


def test_sigterm_stops_the_running_compose_action_and_audits_it(make_stack, server_factory):
    proj = make_stack({"docker-compose.yml": SLOW_STOP}, name="slowstop")
    proj.compose("up", "-d")
    server = server_factory(stack_dir=proj.dir)
    store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
    store.set_setting("stack", {"project": proj.project, "files": [], "profiles": []})
    session = server.session("op", "operator")
    r = session.post(server.url + "/services/web/stop", timeout=10)
    assert r.status_code == 200
    wait_for(lambda: compose_processes(proj.project), timeout=10, message="compose stop running")

    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=5)
    wait_for(lambda: not compose_processes(proj.project), timeout=5, message="compose stopped with us")
    events = [(e.username, e.action, e.target) for e in store.audit_events()]
    assert ("op", "service.stop", "web") in events
