"""The way in stays up: Stackpilot finds the container proxying it (a trusted proxy's address on
its network -> that container's compose service); a stack Down leaves it running, and acting on it
alone first says the page will go away and for how long."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests

from tests.support.live import TEST_PASSWORD
from tests.support.live import ensure_user
from tests.support.live import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STACK = """
services:
  caddy:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
  stackpilot:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
  talker:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
"""
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def container(stack, service: str) -> dict:
    cid = stack.compose("ps", "-a", "-q", service).stdout.strip()
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def states(stack) -> dict[str, str]:
    rows = stack.compose("ps", "-a", "--format", "{{.Service}} {{.State}}").stdout.splitlines()
    return dict(r.split(" ", 1) for r in rows if " " in r)


def test_down_keeps_the_proxy_and_the_proxy_alone_asks_first(make_stack, server_factory):
    stack = make_stack({"docker-compose.yml": STACK})
    stack.compose("up", "-d", "--pull", "never")
    # Stackpilot "is" the stackpilot service (its container id), Caddy is the trusted proxy address.
    own = container(stack, "stackpilot")
    caddy_ip = next(iter(container(stack, "caddy")["NetworkSettings"]["Networks"].values()))["IPAddress"]
    server = server_factory(
        stack_dir=stack.dir, STACKPILOT_SELF_CONTAINER_ID=own["Id"], STACKPILOT_TRUSTED_PROXIES=caddy_ip
    )
    ensure_user(server.data_dir, "admin", "admin")
    s = requests.Session()
    s.trust_env = False
    page = s.get(server.url + "/login", timeout=10)
    s.post(
        server.url + "/login",
        data={"username": "admin", "password": TEST_PASSWORD, "csrf_token": CSRF.search(page.text).group(1)},
        headers={"Origin": server.url},
        timeout=30,
    ).raise_for_status()
    s.headers.update(
        {
            "X-CSRF-Token": CSRF.search(s.get(server.url + "/", timeout=10).text).group(1),
            "Origin": server.url,
            "HX-Request": "true",
        }
    )

    down = s.post(server.url + "/stack/down", timeout=30)
    assert down.status_code == 200, down.text[:500]
    assert "caddy" in down.text and "proxy" in down.text
    wait_for(lambda: "talker" not in states(stack), timeout=30, interval=0.3, message="talker removed")
    assert states(stack)["caddy"] == "running" and states(stack)["stackpilot"] == "running"

    asked = s.post(server.url + "/services/caddy/restart", timeout=30)
    assert asked.status_code == 200 and "This is your way in" in asked.text, asked.text[:500]
    assert "about 10 s" in asked.text and 'name="insist" value="1"' in asked.text
    started = container(stack, "caddy")["State"]["StartedAt"]
    assert container(stack, "caddy")["State"]["StartedAt"] == started

    done = s.post(server.url + "/services/caddy/restart", data={"insist": "1"}, timeout=30)
    assert done.status_code == 200 and "This is your way in" not in done.text
    wait_for(
        lambda: container(stack, "caddy")["State"]["StartedAt"] != started,
        timeout=30,
        interval=0.3,
        message="caddy restarted once the person insisted",
    )
