"""Every action works end to end through the real Compose CLI, shows in the table, is audited,
and only names the compose model defines ever reach a command line."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.stack import stack_from
from tests.conftest import sign_in
from tests.services import stacks
from tests.services.conftest import app_for
from tests.services.conftest import finish
from tests.services.conftest import shared_name
from tests.services.conftest import states
from tests.services.conftest import wait_state


def audit(app) -> list[tuple[str, str, str, str]]:
    events = app.extensions["stackpilot.store"].audit_events()
    return [(e.username, e.action, e.target, e.result) for e in events]


def container_id(docker_engine, project: str, service: str) -> str:
    found = docker_engine.containers.list(
        all=True, filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}
    )
    return found[0].id


def test_service_actions_end_to_end(web_stack, web_app, operator, docker_engine):
    run = finish(operator.post("/services/worker/start"))  # not created yet: up -d worker (+ db)
    assert run.ok, run.lines_since(0)[0]
    assert states(operator)["worker"][0] == "running" and states(operator)["db"][0] == "running"

    run = finish(operator.post("/services/worker/stop"))
    assert run.ok and run.args == ["stop", "--", "worker"]
    wait_state(operator, "worker", "stopped")

    run = finish(operator.post("/services/worker/start"))
    assert run.ok and run.args == ["start", "--", "worker"]
    wait_state(operator, "worker", "running")

    before = container_id(docker_engine, web_stack.project, "worker")
    assert finish(operator.post("/services/worker/restart")).ok
    wait_state(operator, "worker", "running")
    assert finish(operator.post("/services/worker/recreate")).ok
    assert container_id(docker_engine, web_stack.project, "worker") != before
    assert states(operator)["worker"][0] == "running"

    pulled = finish(operator.post("/services/worker/pull"))  # pull_policy: never -> skipped, exit 0
    assert pulled.ok and any("worker" in line for line in pulled.lines_since(0)[0])

    events = audit(web_app)
    for action in ("start", "stop", "restart", "recreate", "pull"):
        assert ("operator", f"service.{action}", "worker", "ok") in events


def test_stack_up_down_keeps_volumes_unless_asked(web_stack, web_app, operator, docker_engine):
    volume = f"{web_stack.project}_dbdata"
    run = finish(operator.post("/stack/up", data={"profiles": "1"}))
    assert run.ok, run.lines_since(0)[0]
    assert any("Started" in line or "Healthy" in line for line in run.lines_since(0)[0])
    wait_state(operator, "web", "running")
    assert states(operator)["init"][0] == "completed"

    page = operator.get("/services").get_data(as_text=True)
    assert volume in page  # the down box says what would be deleted

    run = finish(operator.post("/stack/down"))
    assert run.ok and "-v" not in run.args
    assert states(operator)["web"][0] == "not-created"
    assert volume in [v.name for v in docker_engine.volumes.list()]

    assert finish(operator.post("/stack/up", data={"profiles": "1"})).ok
    run = finish(operator.post("/stack/down", data={"volumes": "delete"}))
    assert run.ok and run.args == ["down", "-v"]
    assert volume not in [v.name for v in docker_engine.volumes.list()]

    events = [(a, t, r) for _, a, t, r in audit(web_app)]
    assert ("stack.down", web_stack.project, "ok") in events
    assert ("stack.up", web_stack.project, "ok") in events
    store = web_app.extensions["stackpilot.store"]
    details = [e.detail for e in store.audit_events() if e.action == "stack.down"]
    assert "volumes kept" in details and any(volume in d for d in details)


def test_up_with_chosen_profile_and_shared_container_name(make_stack, app_factory, docker_engine):
    shared = shared_name()
    proj = make_stack({"docker-compose.yml": stacks.fill(stacks.PROFILES, shared=shared)}, name="prof")
    app = app_for(app_factory, proj, profiles=["gpu-amd"])
    client = sign_in(app, app.test_client(), "operator")
    rows = states(client)
    assert rows["ollama-cpu"] == ("inactive", "inactive profile")
    assert rows["ollama-gpu-amd"] == ("not-created", "not created")
    assert finish(client.post("/stack/up", data={"profiles": "1", "profile": ["gpu-amd"]})).ok
    rows = states(client)
    assert rows["ollama-gpu-amd"][0] == "running" and rows["ollama-gpu"][0] == "inactive"
    assert docker_engine.containers.get(shared).labels["com.docker.compose.service"] == "ollama-gpu-amd"
    # a service of an inactive profile cannot be acted on
    assert client.post("/services/ollama-cpu/start").status_code == 404
    assert client.post("/stack/up", data={"profile": ["no-such-profile"]}).status_code == 422


HOSTILE = [
    "nope",
    "../x",
    "..%2Fx",
    "a;rm -rf x",
    "x" * 300,
    "ünïcødé",
    "web/../../etc",
    "$(id)",
    "-v",
    "--remove-orphans",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_bad_service_names_are_refused(web_stack, web_app, operator, name):
    runner = web_app.extensions["stackpilot.runners"].for_stack(
        stack_from(web_stack.dir, {"project": web_stack.project})
    )
    before = len(runner.recent_runs(100))
    r = operator.post(f"/services/{quote(name, safe='')}/restart")
    assert r.status_code == 404
    assert len(runner.recent_runs(100)) == before
    assert all(target != name for _, _, target, _ in audit(web_app))


def test_unknown_action_is_404(operator):
    assert operator.post("/services/web/explode").status_code == 404
    assert operator.post("/stack/explode").status_code == 404


def test_busy_stack_refuses_a_second_action(web_stack, web_app, operator):
    stack = stack_from(web_stack.dir, {"project": web_stack.project})
    with web_app.extensions["stackpilot.runners"].for_stack(stack).lock("up by someone", user="alice"):
        r = operator.post("/services/worker/restart", headers={"HX-Request": "true"})
        assert r.status_code == 409
        assert "up by someone" in r.get_data(as_text=True) and r.headers["HX-Retarget"] == "#alerts"
        assert "Running now" in operator.get("/services").get_data(as_text=True)
    assert ("operator", "service.restart", "worker", "refused: busy") in audit(web_app)


def test_progress_panel_streams_until_done(web_stack, operator):
    r = operator.post("/services/worker/start")
    run = finish(r)
    body = r.get_data(as_text=True)
    assert "<html" not in body and 'class="run-panel"' in body
    assert r.headers["HX-Trigger"] == "services-changed"
    poll = operator.get(f"/stack/runs/{run.id}", query_string={"after": 0})
    assert poll.status_code == 286  # finished: polling stops
    text = poll.get_data(as_text=True)
    assert "exit code 0" in text and "hx-get" not in text.split('id="run-poll-')[1]
    lines, count = run.lines_since(0)
    tail = operator.get(f"/stack/runs/{run.id}", query_string={"after": count}).get_data(as_text=True)
    assert not any(line and line in tail for line in lines)
    assert operator.get("/stack/runs/nope").status_code == 404


def test_recreate_several_services_in_one_run(web_stack, web_app, operator, docker_engine):
    assert finish(operator.post("/stack/up")).ok
    before = {s: container_id(docker_engine, web_stack.project, s) for s in ("db", "worker")}
    run = finish(operator.post("/stack/recreate", data={"service": ["worker", "db"]}))
    assert run.ok and run.args == ["up", "-d", "--force-recreate", "--no-deps", "--", "worker", "db"]
    after = {s: container_id(docker_engine, web_stack.project, s) for s in ("db", "worker")}
    assert all(before[s] != after[s] for s in before)
    assert ("operator", "stack.recreate", web_stack.project, "ok") in audit(web_app)


@pytest.mark.parametrize("names", [[], ["worker", "../etc"], ["nope"]])
def test_recreate_refuses_unknown_or_missing_names(web_stack, web_app, operator, names):
    runner = web_app.extensions["stackpilot.runners"].for_stack(
        stack_from(web_stack.dir, {"project": web_stack.project})
    )
    runs_before = [x.id for x in runner.recent_runs(limit=30)]
    r = operator.post("/stack/recreate", data={"service": names})
    assert r.status_code in (404, 422)
    assert [x.id for x in runner.recent_runs(limit=30)] == runs_before


FLAG_NAMED = """
services:
  keep:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  "--remove-orphans":
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


def test_a_service_named_like_a_flag_stays_a_name(make_stack, app_factory, docker_engine):
    """Compose allows a service called `--remove-orphans`; Start must start it, not become
    `up -d --remove-orphans` (issue 12 item 6): names go after `--`."""
    proj = make_stack({"docker-compose.yml": FLAG_NAMED}, name="flag")
    app = app_for(app_factory, proj)
    client = sign_in(app, app.test_client(), "operator")
    run = finish(client.post(f"/services/{quote('--remove-orphans', safe='')}/start"))
    assert run.ok, run.lines_since(0)[0]
    assert run.args == ["up", "-d", "--", "--remove-orphans"]
    services = {
        c.labels["com.docker.compose.service"]
        for c in docker_engine.containers.list(filters={"label": f"com.docker.compose.project={proj.project}"})
    }
    assert services == {"--remove-orphans"}  # the flag did not start `keep` too
    run = finish(client.post("/services/--remove-orphans/stop"))
    assert run.ok and run.args == ["stop", "--", "--remove-orphans"]
