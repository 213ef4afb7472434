"""The wizard on a stack with no recipe (generic inference), through its real HTTP steps and a
real launch; and the steps' refusals (GET writes nothing, bad input keeps the person on the step)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import sign_in
from tests.setup.flow import launch_and_wait

pytestmark = pytest.mark.docker

COMPOSE = """\
services:
  api:
    image: {image}
    pull_policy: never
    environment:
      API_SECRET: ${API_SECRET}
    command: ["sh", "-c", "echo api up; exec sleep 3600"]
    healthcheck:
      test: ["CMD-SHELL", "test ${#API_SECRET} -ge 32"]
      interval: 1s
      retries: 20
  worker:
    image: {image}
    pull_policy: never
    profiles: ["extra"]
    command: ["sleep", "3600"]
"""
EXAMPLE = """\
# The API's signing secret
API_SECRET=changeme
# APP_HOSTNAME=app.example.com
# LETSENCRYPT_EMAIL=you@example.com
"""


def test_generic_stack_from_checks_to_running(app_factory, make_stack, docker_engine):
    old_env = "# mine\nAPI_SECRET=changeme\nKEEP_ME=a-real-value\n"
    proj = make_stack(
        {
            "compose.yaml": COMPOSE.replace("${#API_SECRET}", "$${#API_SECRET}"),
            ".env.example": EXAMPLE,
            ".env": old_env,
        }
    )
    app = app_factory(stack_dir=proj.dir)
    c = sign_in(app, app.test_client(), "admin")
    before = sorted(p.name for p in proj.dir.iterdir())

    assert c.get("/setup/").headers["Location"].endswith("/setup/preflight")
    assert c.get("/setup/stack").headers["Location"].endswith("/setup/preflight")  # not yet reachable
    checks = c.get("/setup/preflight/checks").get_data(as_text=True)
    assert 'id="check-files"' in checks and "Valid: 1 service" in checks
    assert c.post("/setup/preflight").status_code == 302

    page = c.get("/setup/stack").get_data(as_text=True)
    assert "No recipe for this folder" in page and 'value="extra"' in page and "adds worker" in page
    bad = c.post("/setup/stack", data={"project": "Bad Name!", "file": "compose.yaml"})
    assert bad.status_code == 422 and "lowercase letters" in bad.get_data(as_text=True)
    assert c.post("/setup/stack", data={"project": proj.project, "file": "compose.yaml"}).status_code == 302

    page = c.get("/setup/config").get_data(as_text=True)
    assert "API_SECRET" in page and "placeholder" in page
    refused = c.post("/setup/config")
    assert refused.status_code == 422 and "Still placeholders: API_SECRET" in refused.get_data(as_text=True)
    c.post("/setup/config/generate")
    assert c.post("/setup/config").status_code == 302

    page = c.get("/setup/https").get_data(as_text=True)
    assert "APP_HOSTNAME" in page  # inferred from the commented example line
    assert (
        c.post("/setup/https", data={"mode": "public", "host_APP_HOSTNAME": "app.example.com"}).status_code
        == 422
    )
    r = c.post(
        "/setup/https",
        data={"mode": "public", "host_APP_HOSTNAME": "app.example.com", "email": "me@example.com"},
    )
    assert r.status_code == 302
    review = c.get("/setup/review").get_data(as_text=True)
    assert "compose.yaml" in review and "APP_HOSTNAME" in review and ".env_backups/" in review
    assert sorted(p.name for p in proj.dir.iterdir()) == before  # nothing written before the launch

    done = launch_and_wait(c)
    assert done.headers.get("HX-Redirect") in ("/", "/services"), done.get_data(as_text=True)
    env = (proj.dir / ".env").read_text()
    secret = re.search(r"^API_SECRET=(.+)$", env, re.M).group(1)
    assert len(secret) >= 32 and "APP_HOSTNAME=app.example.com" in env
    assert env.startswith("# mine\n") and "KEEP_ME=a-real-value" in env  # edited in place
    backups = list((proj.dir / ".env_backups").glob(".env.*"))
    assert [b.read_text() for b in backups] == [old_env] and (backups[0].stat().st_mode & 0o777) == 0o600
    containers = docker_engine.containers.list(
        filters={"label": f"com.docker.compose.project={proj.project}"}
    )
    assert [c.labels["com.docker.compose.service"] for c in containers] == ["api"]
    assert app.extensions["stackpilot.store"].get_setting("stack")["project"] == proj.project
    wizard = app.extensions["stackpilot.store"].get_setting("wizard")
    assert wizard["completed"] and wizard["env"] == {}  # no copy of the secrets left in the store
