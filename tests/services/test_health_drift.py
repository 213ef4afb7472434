"""Health that says why, "blocked by" only where a condition is unmet, and drift: each against
the real engine and the real Compose."""

from __future__ import annotations

import subprocess

import pytest

from app import compose
from app.engine.containers import ContainerInfo
from app.stack.model import model_from_json
from app.stack.services import build_rows
from tests.conftest import PREFIX
from tests.conftest import sign_in
from tests.services.conftest import app_for
from tests.services.conftest import finish
from tests.services.conftest import wait_state
from tests.support.live import wait_for


def cell(html: str, slug: str, column: str) -> str:
    return html.split(f'id="r-{slug}-{column}"')[1].split("</td>")[0]


@pytest.mark.docker
def test_unhealthy_row_says_why_and_blocks_only_the_service_waiting_for_it(health_stack, app_factory):
    app = app_for(app_factory, health_stack)
    client = sign_in(app, app.test_client(), "viewer")
    # db never gets healthy: Compose starts cache (service_started), leaves api created.
    up = health_stack.compose("up", "-d", check=False)
    assert up.returncode != 0 and "unhealthy" in up.stderr

    def why():
        html = client.get("/services").get_data(as_text=True)
        return html if "FATAL: database" in cell(html, "db", "health") else None

    html = wait_for(why, timeout=20, interval=0.3, message="db's healthcheck output on its row")
    health = cell(html, "db", "health")
    assert "unhealthy" in health and "exit code 3" in health
    assert "FATAL: database &#34;app&#34; is starting up" in health  # escaped, as the check said it
    assert "<details" in health and "<summary" in health  # opens with the keyboard
    assert "blocked by db" in cell(html, "api", "state")  # created, waiting for healthy
    wait_state(client, "cache", "running")
    html = client.get("/services").get_data(as_text=True)
    assert "blocked" not in cell(html, "cache", "state")  # started: nothing blocks it
    assert "blocked" not in cell(html, "db", "state")

    svg = client.get("/graph/").get_data(as_text=True)
    node = svg.split('data-service="db"')[1].split("</a>")[0]
    assert "exit 3: FATAL: database" in node and "Last check: exit code 3" in node
    assert "blocked by db" in svg.split('data-service="api"')[1].split("</a>")[0]
    assert "blocked" not in svg.split('data-service="cache"')[1].split("</a>")[0]
    assert 'class="graph-notes"' in svg and "exit code 3" in svg.split('class="graph-notes"')[1]

    # The database comes up: api's condition is met, nothing is blocked any more.
    subprocess.run(["docker", "exec", f"{health_stack.project}-db-1", "touch", "/tmp/ready"], check=True)
    wait_for(
        lambda: ">healthy<" in cell(client.get("/services").get_data(as_text=True), "db", "health"),
        timeout=20,
        interval=0.3,
        message="db healthy",
    )
    health_stack.compose("up", "-d", "api")
    wait_state(client, "api", "running")
    html = client.get("/services").get_data(as_text=True)
    assert "blocked by" not in html and "FATAL" not in html


def _info(service: str, state: str, health: str = "", exit_code: int | None = None) -> ContainerInfo:
    return ContainerInfo(
        id=service,
        name=service,
        service=service,
        number=1,
        state=state,
        health=health,
        exit_code=exit_code,
        started_at=None,
        finished_at=None,
        restart_count=0,
        image="img",
        image_id="sha256:a",
    )


@pytest.mark.parametrize(
    ("condition", "dep", "blocked"),
    [
        ("service_healthy", _info("dep", "running", "healthy"), False),
        ("service_healthy", _info("dep", "running", "starting"), True),
        ("service_healthy", _info("dep", "running", "unhealthy"), True),
        ("service_completed_successfully", _info("dep", "exited", exit_code=0), False),
        ("service_completed_successfully", _info("dep", "exited", exit_code=2), True),
        ("service_completed_successfully", _info("dep", "running"), True),
        ("service_started", _info("dep", "running"), False),
        ("service_started", _info("dep", "created"), True),
    ],
)
@pytest.mark.parametrize("waiter", ["created", "running"])
def test_blocked_by_names_only_an_unmet_condition(condition, dep, blocked, waiter):
    model = model_from_json(
        {
            "name": "p",
            "services": {
                "dep": {"image": "img"},
                "app": {"image": "img", "depends_on": {"dep": {"condition": condition}}},
            },
        }
    )
    rows = {r.name: r for r in build_rows(model, [dep, _info("app", waiter)])}
    assert rows["app"].blocked_by == (("dep",) if blocked and waiter == "created" else ())
    assert rows["dep"].blocked_by == ()


@pytest.mark.docker
def test_drift_after_env_change_until_recreated(health_stack, app_factory, monkeypatch):
    app = app_for(app_factory, health_stack)
    client = sign_in(app, app.test_client(), "operator")
    hash_runs = []
    real_query = compose.ComposeRunner.query

    def counting_query(runner, args, *more, **kw):  # the real Compose, counted
        if list(args[:2]) == ["config", "--hash"]:
            hash_runs.append(runner.stack.project)
        return real_query(runner, args, *more, **kw)

    monkeypatch.setattr(compose.ComposeRunner, "query", counting_query)
    health_stack.compose("up", "-d", "--no-deps", "cache")
    wait_state(client, "cache", "running")
    html = client.get("/services").get_data(as_text=True)
    assert "older configuration" not in html and 'class="drift"' not in html
    for _ in range(3):
        client.get("/services/table")
    assert len(hash_runs) == 1  # once per change of the files, not per row or per poll

    (health_stack.dir / ".env").write_text("GREETING=changed\n")  # saved, not recreated
    html = client.get("/services").get_data(as_text=True)
    assert len(hash_runs) == 2
    assert "runs an older configuration" in cell(html, "cache", "state")
    assert 'class="drift"' not in cell(html, "db", "state")  # never created: nothing to compare
    banner = html.split('id="svc-banner"')[1].split('id="svc-counts"')[0]
    assert "Recreate the changed ones" in banner and 'name="service" value="cache"' in banner

    run = finish(client.post("/stack/recreate", data={"service": ["cache"]}))
    assert run.ok, run.lines_since(0)[0]
    wait_state(client, "cache", "running")
    html = client.get("/services").get_data(as_text=True)
    assert "older configuration" not in html and "Recreate the changed ones" not in html

    # An env_file's content is configuration too (Compose recreates for it).
    (health_stack.dir / "cache.env").write_text("MODE=two\n")
    html = client.get("/services").get_data(as_text=True)
    assert "runs an older configuration" in cell(html, "cache", "state")


@pytest.mark.docker
def test_drift_when_the_image_tag_moved(make_stack, app_factory, busybox_image, docker_engine):
    tag = f"{PREFIX}-img:1"
    subprocess.run(["docker", "tag", busybox_image, tag], check=True)
    proj = make_stack(
        {
            "docker-compose.yml": f"""
services:
  app:
    image: {tag}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""
        },
        name="imgdrift",
    )
    try:
        app = app_for(app_factory, proj)
        client = sign_in(app, app.test_client(), "viewer")
        proj.compose("up", "-d")
        wait_state(client, "app", "running")
        assert "older image" not in client.get("/services").get_data(as_text=True)
        # A newer image under the same tag (as `docker compose pull` would leave it).
        container = docker_engine.containers.get(f"{proj.project}-app-1")
        container.commit(repository=f"{PREFIX}-img", tag="1", changes=["LABEL rebuilt=yes"])

        def marked():
            html = client.get("/services").get_data(as_text=True)
            return "runs an older image" in cell(html, "app", "state")

        wait_for(marked, timeout=20, interval=0.5, message="the image drift marker")
        proj.compose("up", "-d", "--force-recreate")
        wait_for(
            lambda: "older image" not in client.get("/services").get_data(as_text=True),
            timeout=20,
            interval=0.5,
            message="the marker gone after recreate",
        )
    finally:
        proj.compose("down", "-t", "0", check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@pytest.mark.docker
def test_broken_files_still_show_the_running_containers(health_stack, app_factory):
    app = app_for(app_factory, health_stack)
    admin = sign_in(app, app.test_client(), "admin")
    health_stack.compose("up", "-d", "--no-deps", "cache")
    wait_state(admin, "cache", "running")
    compose_file = health_stack.dir / "docker-compose.yml"
    compose_file.write_text(compose_file.read_text() + "\n  broken: [\n")
    r = admin.get("/services")
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    banner = text.split('id="svc-banner"')[1].split('id="svc-counts"')[0]
    assert "banner-error" in banner and "found by their" in banner
    assert 'data-state="running"' in cell(text, "cache", "state")
    assert 'data-action="stop"' not in text and 'id="act-up"' not in text  # no action without files
    fragment = admin.get("/services/table").get_data(as_text=True)
    assert 'id="r-cache-state"' in fragment
