"""Build (issue 14): services with `build:` are built and recreated through Compose, with BuildKit's
plain progress in the run panel; a failed build names its step and leaves the running container."""

from __future__ import annotations

import subprocess

import pytest

from app import tokens
from tests.conftest import sign_in
from tests.services.conftest import app_for
from tests.services.conftest import finish
from tests.support.live import wait_for

# network: none -- the test engine has no default bridge; RUN steps need no network here.
COMPOSE = """services:
  app:
    build:
      context: ./app
      network: none
      target: final
      args:
        FLAVOUR: blue
    command: ["sh", "-c", "cat /version; sleep 3600"]
  side:
    image: {image}
    command: ["sleep", "3600"]
"""
# Build args and target come from the compose model (Compose applies them; we never build by hand).
DOCKERFILE = (
    "FROM {image} AS final\nARG FLAVOUR=plain\nRUN echo $FLAVOUR > /flavour\nCOPY version /version\nRUN cat /version\n"
)


@pytest.fixture
def built_stack(make_stack, busybox_image):
    proj = make_stack(
        {"docker-compose.yml": COMPOSE, "app/Dockerfile": DOCKERFILE, "app/version": "v1\n"}, name="build"
    )
    yield proj
    proj.compose("down", "-t", "0", check=False)
    subprocess.run(["docker", "rmi", "-f", f"{proj.project}-app"], capture_output=True)


def _logs(proj) -> str:
    return proj.compose("logs", "--no-log-prefix", "app").stdout


def _container(docker_engine, project: str):
    found = docker_engine.containers.list(
        all=True, filters={"label": [f"com.docker.compose.project={project}", "com.docker.compose.service=app"]}
    )
    return found[0] if found else None


def test_rebuild_runs_new_code_and_failed_build_keeps_container(built_stack, app_factory, docker_engine):
    app = app_for(app_factory, built_stack)
    op = sign_in(app, app.test_client(), "operator")

    page = op.get("/services").get_data(as_text=True)
    assert 'data-built="' in page and "built here" in page  # the row says where the image comes from
    row_app = page[page.index('id="r-app"') : page.index('id="r-side"')]
    assert 'data-action="rebuild"' in row_app and 'data-action="pull"' not in row_app
    assert 'data-action="upbuild"' in page

    run = finish(op.post("/build/stack/upbuild"))
    lines = run.lines_since(0)[0]
    assert run.ok, lines
    assert any(line.startswith("#") and "RUN cat /version" in line for line in lines)  # BuildKit plain progress
    wait_for(lambda: "v1" in _logs(built_stack), timeout=20, message="v1 running")
    assert built_stack.compose("exec", "-T", "app", "cat", "/flavour").stdout.strip() == "blue"  # build arg honoured
    first = _container(docker_engine, built_stack.project)

    (built_stack.dir / "app" / "version").write_text("v2\n")
    run = finish(op.post("/build/service/app/build"))  # build only: the container stays on v1
    assert run.ok and run.args[:1] == ["build"] and run.args[-2:] == ["--", "app"]
    assert _container(docker_engine, built_stack.project).id == first.id
    html = op.get("/services").get_data(as_text=True)
    assert 'data-drift="image"' in html  # rebuilt image, old container: out of date (app.stack.services drift)

    run = finish(op.post("/build/service/app/rebuild", data={"no_cache": "1"}))
    assert run.ok, run.lines_since(0)[0]
    assert run.args == ["build", "--no-cache", "--", "app", "&&", "up", "-d", "--no-deps", "--", "app"]
    wait_for(lambda: "v2" in _logs(built_stack), timeout=20, message="v2 running")
    second = _container(docker_engine, built_stack.project)
    assert second.id != first.id

    (built_stack.dir / "app" / "Dockerfile").write_text(
        DOCKERFILE.replace("{image}", "stackpilot-test/busybox:1") + "RUN echo broken && exit 3\n"
    )
    run = finish(op.post("/build/service/app/rebuild"))
    lines = run.lines_since(0)[0]
    assert run.exit_code not in (0, None)
    assert "Build failed at step [app 5/5] RUN echo broken && exit 3" in lines[-1], lines[-5:]
    assert not any(line.startswith("$ up") for line in lines)  # never got to the recreate
    still = _container(docker_engine, built_stack.project)
    assert still.id == second.id and still.status == "running"

    events = [(e.action, e.target, e.result) for e in app.extensions["stackpilot.store"].audit_events()]
    assert ("service.rebuild", "app", "ok") in events
    assert any(a == "service.rebuild" and r.startswith("failed") for a, _, r in events)


def test_build_refused_for_pulled_service(built_stack, app_factory):
    app = app_for(app_factory, built_stack)
    op = sign_in(app, app.test_client(), "operator")
    response = op.post("/build/service/side/rebuild")
    assert response.status_code == 422 and "pulled, not built here" in response.get_data(as_text=True)
    assert op.post("/build/service/app/explode").status_code == 404


@pytest.mark.browser
def test_rebuild_from_the_row_menu_streams_build_output(built_stack, server_factory, page):
    from app.store import Store
    from tests.support.screens import shoot

    built_stack.compose("up", "-d", "--build")
    (built_stack.dir / "app" / "version").write_text("v2\n")
    server = server_factory(stack_dir=built_stack.dir)
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": built_stack.project, "files": [], "profiles": []}
    )
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/services")
    assert pg.locator("#r-app .tag.built").inner_text() == "built here"
    pg.click("#menu-app summary")
    assert pg.locator("#menu-app button[data-action=pull]").count() == 0
    shoot(pg, "build-row-menu")
    pg.click("#menu-app button[data-action=rebuild]")
    pg.wait_for_selector(".run-panel .run-title:has-text('rebuild')")
    pg.wait_for_selector(".run-status .badge:has-text('exit code 0')", timeout=60_000)
    log = pg.locator(".run-log").inner_text()
    assert "RUN cat /version" in log and "$ up -d --no-deps -- app" in log
    shoot(pg, "build-run")
    wait_for(lambda: "v2" in _logs(built_stack), timeout=20, message="v2 running")


def test_build_plans_put_names_after_the_separator():
    from pathlib import Path

    from app.errors import OwnContainer
    from app.stack import Stack
    from app.stack.actions import plan_build

    stack = Stack(directory=Path("/srv/x"), project="x")
    plan = plan_build(stack, "rebuild", ["--remove-orphans"], pull=True)
    assert plan.steps == (
        ("build", "--pull", "--", "--remove-orphans"),
        ("up", "-d", "--no-deps", "--", "--remove-orphans"),
    )
    assert plan_build(stack, "upbuild", ["app"], every=["app", "db"]).steps == (("up", "-d", "--build"),)
    own = plan_build(stack, "upbuild", ["app"], own="sp", every=["app", "sp"], no_cache=True)
    assert own.steps == (("build", "--no-cache"), ("up", "-d", "--no-deps", "--", "app")) and own.note
    with pytest.raises(OwnContainer):
        plan_build(stack, "rebuild", ["sp"], own="sp")


def test_api_builds_the_stack_and_refuses_a_stack_with_nothing_to_build(built_stack, app_factory, make_stack):
    """POST /api/v1/stacks/-/build runs `compose build` for the built services (same plan as the
    page's Build all); a stack whose images are all pulled answers 422 in problem+json."""
    app = app_for(app_factory, built_stack)
    store = app.extensions["stackpilot.store"]
    sign_in(app, app.test_client(), "operator")  # makes the operator account
    user = store.user_by_name("operator")
    plain, _ = tokens.create(store, app.config["SECRET_KEY"], user, "ci", "operator", None)
    api = app.test_client()
    auth = {"Authorization": f"Bearer {plain}"}

    response = api.post("/api/v1/stacks/-/build?wait=120", json={"no_cache": True}, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    run = response.get_json()["run"]
    assert run["exit_code"] == 0
    assert any("RUN cat /version" in line for line in api.get(run["url"], headers=auth).get_json()["lines"])
    events = [(e.action, e.result) for e in store.audit_events()]
    assert ("stack.build", "ok") in events

    pulled = make_stack({"docker-compose.yml": "services:\n  only:\n    image: {image}\n"}, name="pulled")
    other = app_for(app_factory, pulled)
    other_store = other.extensions["stackpilot.store"]
    sign_in(other, other.test_client(), "operator")
    op = other_store.user_by_name("operator")
    plain, _ = tokens.create(other_store, other.config["SECRET_KEY"], op, "ci-pulled", "operator", None)
    refused = other.test_client().post("/api/v1/stacks/-/build", headers={"Authorization": f"Bearer {plain}"})
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert "pulled, not built" in refused.get_json()["detail"]
