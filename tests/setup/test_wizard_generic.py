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
    assert c.post("/setup/https", data={"mode": "public", "host_APP_HOSTNAME": "app.example.com"}).status_code == 422
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
    containers = docker_engine.containers.list(filters={"label": f"com.docker.compose.project={proj.project}"})
    assert [c.labels["com.docker.compose.service"] for c in containers] == ["api"]
    assert app.extensions["stackpilot.store"].get_setting("stack")["project"] == proj.project
    wizard = app.extensions["stackpilot.store"].get_setting("wizard")
    assert wizard["completed"] and wizard["env"] == {}  # no copy of the secrets left in the store


FLAKY = """\
services:
  api:
    image: {image}
    pull_policy: never
    environment:
      READY: ${READY}
    command: ["sh", "-c", "test \\"$$READY\\" = yes && exec sleep 3600"]
    stop_grace_period: 1s
"""


def test_retry_keeps_stack_settings_and_a_later_up_clears_failed(app_factory, make_stack, docker_engine):
    """A failed launch; Stack settings add a file; Retry uses it (never puts back the wizard's
    older list); an Up from the Services page then makes the setup page say the stack runs."""
    from tests.support.live import wait_for

    proj = make_stack(
        {
            "compose.yaml": FLAKY,
            "compose.extra.yml": "services:\n  api:\n    labels: {extra: 'yes'}\n",
            ".env.example": "READY=no\n",
        }
    )
    app = app_factory(stack_dir=proj.dir)
    store = app.extensions["stackpilot.store"]
    c = sign_in(app, app.test_client(), "admin")
    assert c.post("/setup/preflight").status_code == 302
    page = c.get("/setup/stack").get_data(as_text=True)
    assert 'name="file" value="compose.extra.yml"' in page and 'value="compose.extra.yml" checked' not in page
    assert c.post("/setup/stack", data={"project": proj.project, "file": "compose.yaml"}).status_code == 302
    assert c.post("/setup/config").status_code == 302
    assert c.post("/setup/https", data={"mode": "private"}).status_code == 302
    failed = launch_and_wait(c)
    assert failed.status_code == 286 and "api did not start" in failed.get_data(as_text=True)

    files = ["compose.yaml", "compose.extra.yml"]
    r = c.post(
        "/stack/settings",
        data={"project": proj.project, "file": files, "pos_compose.yaml": "1", "pos_compose.extra.yml": "2"},
    )
    assert r.status_code == 303
    again = launch_and_wait(c)  # Retry
    assert again.status_code == 286
    assert store.get_setting("stack")["files"] == files  # not overwritten by the wizard's older choice
    api = docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={proj.project}"})[0]
    assert api.labels.get("extra") == "yes"  # the retry ran with the file Stack settings added
    assert "The launch stopped" in c.get("/setup/launch").get_data(as_text=True)

    (proj.dir / ".env").write_text("READY=yes\n")  # fixed (as the .env editor would)
    assert c.post("/stack/up").status_code in (200, 303)

    def running():
        found = docker_engine.containers.list(filters={"label": f"com.docker.compose.project={proj.project}"})
        return found if found and found[0].status == "running" else None

    wait_for(running, timeout=60, message="the stack to run after Up")
    page = c.get("/setup/launch").get_data(as_text=True)
    assert "The stack runs now" in page and "The launch stopped" not in page
    assert wizard_state_of(store)["completed"]


def wizard_state_of(store) -> dict:
    return store.get_setting("wizard")


def test_profiles_follow_the_files_ticked(app_factory, make_stack):
    """A profile only an extra file names is offered (fragment) and accepted once that file is ticked."""
    proj = make_stack(
        {
            "compose.yaml": "services:\n  api:\n    image: {image}\n",
            "compose.gpu.yml": "services:\n  gpu:\n    image: {image}\n    profiles: [gpu]\n",
        }
    )
    app = app_factory(stack_dir=proj.dir)
    c = sign_in(app, app.test_client(), "admin")
    assert c.post("/setup/preflight").status_code == 302
    assert 'value="gpu"' not in c.get("/setup/stack").get_data(as_text=True)
    frag = c.get("/setup/stack/profiles?file=compose.yaml&file=compose.gpu.yml")
    body = frag.get_data(as_text=True)
    assert frag.status_code == 200 and "<html" not in body and 'value="gpu"' in body and "adds gpu" in body
    assert c.get("/setup/stack/profiles?file=../../etc/passwd").status_code == 422
    r = c.post(
        "/setup/stack", data={"project": proj.project, "file": ["compose.yaml", "compose.gpu.yml"], "profile": "gpu"}
    )
    assert r.status_code == 302
    state = app.extensions["stackpilot.store"].get_setting("wizard")["stack"]
    assert state["files"] == ["compose.yaml", "compose.gpu.yml"] and state["profiles"] == ["gpu"]
