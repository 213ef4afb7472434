"""Stackpilot inside the stack it manages (the README's `include:` install): no action may stop
or replace its own container, so the UI never kills itself half way through a Compose run.

A real container plays "Stackpilot": the app is told its id through STACKPILOT_SELF_CONTAINER_ID
(the override for tests and unusual runtimes), and every check is made on the real engine.
"""

from __future__ import annotations

import pytest

from app.engine import Engine
from app.engine.self import own_container_id
from app.engine.self import own_service
from app.errors import SettingsError
from app.settings import from_env
from tests.conftest import sign_in
from tests.services.conftest import app_for
from tests.services.conftest import finish

# `web` depends on `stackpilot`: a plain `up` would pull it into the run (and recreate it when its
# config changed). `web` has an anonymous volume (rm -v deletes it) and a named one (kept).
SELF_STACK = """
services:
  stackpilot:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    volumes: ["spdata:/data"]
    environment:
      GENERATION: "{generation}"
  web:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on: [stackpilot]
    volumes: ["webdata:/data", "/scratch"]
  worker:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
volumes:
  spdata: {{}}
  webdata: {{}}
"""


def compose_text(image: str, generation: str = "1") -> str:
    return SELF_STACK.format(image=image, generation=generation)


def container(docker_engine, project: str, service: str):
    found = docker_engine.containers.list(
        all=True, filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}
    )
    return found[0] if found else None


def started_at(docker_engine, project: str, service: str) -> str:
    return container(docker_engine, project, service).attrs["State"]["StartedAt"]


@pytest.fixture
def self_stack(make_stack, busybox_image):
    proj = make_stack({"docker-compose.yml": compose_text("{image}")}, name="self")
    proj.compose("up", "-d")
    return proj


@pytest.fixture
def self_id(self_stack, docker_engine) -> str:
    return container(docker_engine, self_stack.project, "stackpilot").id


@pytest.fixture
def self_app(app_factory, self_stack, self_id):
    return app_for(app_factory, self_stack, env={"STACKPILOT_SELF_CONTAINER_ID": self_id})


@pytest.fixture
def operator(self_app):
    return sign_in(self_app, self_app.test_client(), "operator")


def audit(app) -> list[tuple[str, str, str, str]]:
    events = app.extensions["stackpilot.store"].audit_events()
    return [(e.action, e.target, e.result, e.detail) for e in events]


def test_own_service_names_our_service_in_our_project_only(self_stack, self_id):
    engine = Engine()
    try:
        assert own_container_id(self_id) == self_id
        assert own_service(engine, self_stack.project, self_id) == "stackpilot"
        assert own_service(engine, self_stack.project + "-other", self_id) is None
        # Without the override: this test process is no container of that project.
        assert own_service(engine, self_stack.project) is None
        assert own_service(engine, self_stack.project, "no-such-container-here") is None
    finally:
        engine.close()


@pytest.mark.parametrize("bad", ["../x", "a b", "$(id)", "-rf"])
def test_bad_override_stops_start_up(tmp_path, bad):
    with pytest.raises(SettingsError):
        from_env({"STACKPILOT_DATA_DIR": str(tmp_path), "STACKPILOT_SELF_CONTAINER_ID": bad})


def test_row_menu_disables_what_would_stop_us(operator):
    html = operator.get("/services").get_data(as_text=True)
    own_row = html.split('id="r-stackpilot"')[1].split("</tr>")[0]
    web_row = html.split('id="r-web"')[1].split("</tr>")[0]
    for action in ("stop", "restart", "recreate"):
        before_button = own_row.split(f'data-action="{action}"')[0]
        assert 'disabled title="Stackpilot runs in this container' in before_button
        assert f'hx-post="/services/stackpilot/{action}"' not in own_row
        assert f'hx-post="/services/web/{action}"' in web_row
    assert 'hx-post="/services/stackpilot/start"' in own_row  # harmless: it runs already
    assert "disabled" not in web_row


@pytest.mark.parametrize("action", ["stop", "restart", "recreate"])
def test_per_service_action_on_ourselves_is_refused(self_stack, self_app, operator, docker_engine, self_id, action):
    before = started_at(docker_engine, self_stack.project, "stackpilot")
    r = operator.post(f"/services/stackpilot/{action}", headers={"HX-Request": "true"})
    assert r.status_code == 409
    text = r.get_data(as_text=True)
    assert "Stackpilot cannot stop or recreate its own container from inside" in text
    assert f"docker compose -p {self_stack.project}" in text and r.headers["HX-Retarget"] == "#alerts"
    ours = container(docker_engine, self_stack.project, "stackpilot")
    assert ours.id == self_id and ours.status == "running"
    assert ours.attrs["State"]["StartedAt"] == before
    assert (f"service.{action}", "stackpilot", "refused: own container", "") in audit(self_app)


def test_stack_restart_leaves_us_running(self_stack, self_app, operator, docker_engine):
    ours = started_at(docker_engine, self_stack.project, "stackpilot")
    web = started_at(docker_engine, self_stack.project, "web")
    run = finish(operator.post("/stack/restart"))
    assert run.ok, run.lines_since(0)[0]
    assert run.args == ["restart", "--", "web", "worker"]
    assert started_at(docker_engine, self_stack.project, "stackpilot") == ours
    assert started_at(docker_engine, self_stack.project, "web") != web
    assert any(a == "stack.restart" and res == "ok" and "not restarted" in d for a, _, res, d in audit(self_app))


def test_stack_up_does_not_recreate_us_even_when_our_config_changed(
    self_stack, self_app, operator, docker_engine, busybox_image, self_id
):
    self_stack.compose("rm", "-f", "-s", "worker")
    self_stack.write("docker-compose.yml", compose_text(busybox_image, generation="2"))
    run = finish(operator.post("/stack/up", data={"profiles": "1"}))
    assert run.ok, run.lines_since(0)[0]
    assert "stackpilot" not in run.args and run.args[-2:] == ["web", "worker"]
    ours = container(docker_engine, self_stack.project, "stackpilot")
    assert ours.id == self_id and ours.status == "running"
    assert "GENERATION=1" in ours.attrs["Config"]["Env"]  # a plain `up` would have recreated it
    assert container(docker_engine, self_stack.project, "worker").status == "running"


def test_stack_down_removes_the_others_and_keeps_us(self_stack, self_app, operator, docker_engine, self_id):
    project = self_stack.project
    anonymous = [
        m["Name"] for m in container(docker_engine, project, "web").attrs["Mounts"] if m["Destination"] == "/scratch"
    ][0]
    run = finish(operator.post("/stack/down", data={"volumes": "delete"}))
    assert run.ok, run.lines_since(0)[0]
    assert run.args[:4] == ["rm", "-f", "-s", "-v"] and "stackpilot" not in run.args
    assert "kept" in run.title
    ours = container(docker_engine, project, "stackpilot")
    assert ours.id == self_id and ours.status == "running"
    assert container(docker_engine, project, "web") is None
    assert container(docker_engine, project, "worker") is None
    assert docker_engine.networks.list(names=[f"{project}_default"])  # our network stays
    volumes = [v.name for v in docker_engine.volumes.list()]
    assert anonymous not in volumes  # rm -v: anonymous volumes go
    assert f"{project}_webdata" in volumes and f"{project}_spdata" in volumes  # named ones stay
    detail = [d for a, _, res, d in audit(self_app) if a == "stack.down" and res == "ok"][0]
    assert "named volumes kept while Stackpilot runs in the stack" in detail

    # and back up: the others return, we are still the same container
    assert finish(operator.post("/stack/up")).ok
    assert container(docker_engine, project, "web").status == "running"
    assert container(docker_engine, project, "stackpilot").id == self_id


def test_recreate_of_several_skips_us_and_alone_is_refused(self_stack, self_app, operator, docker_engine, self_id):
    web = container(docker_engine, self_stack.project, "web").id
    run = finish(operator.post("/stack/recreate", data={"service": ["stackpilot", "web"]}))
    assert run.ok and run.args == ["up", "-d", "--force-recreate", "--no-deps", "--", "web"]
    assert "skipped" in run.title
    assert container(docker_engine, self_stack.project, "web").id != web
    r = operator.post("/stack/recreate", data={"service": ["stackpilot"]})
    assert r.status_code == 409
    assert container(docker_engine, self_stack.project, "stackpilot").id == self_id
