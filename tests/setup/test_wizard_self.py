"""Installed inside the stack it manages, the wizard's launch never recreates Stackpilot itself,
even when the new .env changes Stackpilot's own service configuration."""

from __future__ import annotations

import pytest

from tests.conftest import sign_in
from tests.setup.flow import launch_and_wait

pytestmark = pytest.mark.docker

COMPOSE = """\
services:
  stackpilot:
    image: {image}
    pull_policy: never
    environment:
      SHARED_SECRET: ${API_SECRET}
    command: ["sh", "-c", "exec sleep 3600"]
    volumes: ["{dir}:{dir}"]
    stop_grace_period: 1s
  api:
    image: {image}
    pull_policy: never
    environment:
      API_SECRET: ${API_SECRET}
    command: ["sh", "-c", "exec sleep 3600"]
    stop_grace_period: 1s
"""


def container(docker_engine, project: str, service: str):
    found = docker_engine.containers.list(
        all=True, filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}
    )
    return found[0] if found else None


def test_launch_leaves_our_own_container_alone(app_factory, make_stack, docker_engine):
    proj = make_stack({".env.example": "API_SECRET=changeme\n", ".env": "API_SECRET=changeme\n"})
    proj.write("compose.yaml", COMPOSE.replace("{image}", "stackpilot-test/busybox:1").replace("{dir}", str(proj.dir)))
    proj.compose("up", "-d", "stackpilot")
    ours = container(docker_engine, proj.project, "stackpilot")
    app = app_factory(stack_dir=proj.dir, STACKPILOT_SELF_CONTAINER_ID=ours.id)
    c = sign_in(app, app.test_client(), "admin")

    assert c.post("/setup/preflight").status_code == 302
    assert c.post("/setup/stack", data={"project": proj.project, "file": "compose.yaml"}).status_code == 302
    c.post("/setup/config/generate")
    assert c.post("/setup/config").status_code == 302
    assert c.post("/setup/https", data={"mode": "private"}).status_code == 302
    c.get("/setup/review")
    done = launch_and_wait(c)
    assert done.headers.get("HX-Redirect") in ("/", "/services"), done.get_data(as_text=True)
    assert "API_SECRET=changeme" not in (proj.dir / ".env").read_text()  # Stackpilot's config changed
    after = container(docker_engine, proj.project, "stackpilot")
    assert after.id == ours.id and after.status == "running"  # ... yet it was not recreated
    assert container(docker_engine, proj.project, "api").status == "running"
    from app.stack import Stack

    run = app.extensions["stackpilot.runners"].for_stack(Stack(proj.dir, proj.project)).recent_runs()[0]
    assert run.args == ["up", "-d", "--no-deps", "--", "api"]  # names after `--`, never as flags
