"""The table shows each state right, refreshes only what changed, and survives a dead engine."""

from __future__ import annotations

import re

import pytest

from tests.conftest import sign_in
from tests.services.conftest import app_for
from tests.services.conftest import states
from tests.services.conftest import wait_state
from tests.support.live import wait_for

VERSION = re.compile(r'name="v" value="([^"]+)"')


def test_table_shows_each_state(web_stack, web_app):
    client = sign_in(web_app, web_app.test_client(), "viewer")
    before = states(client)
    assert before["web"] == ("not-created", "not created")
    assert "blocked by" not in client.get("/services").get_data(as_text=True)  # down is not blocked
    web_stack.compose("up", "-d", "db", "init", "web", "worker", "crashy")
    assert wait_state(client, "init", "completed")[1] == "completed"
    wait_state(client, "web", "running")
    wait_state(client, "crashy", "restarting", timeout=40)
    now = states(client)
    assert now["db"] == ("running", "running") and now["worker"][0] == "running"
    assert now["idle"] == ("not-created", "not created")
    html = client.get("/services").get_data(as_text=True)
    db_health = html.split('id="r-db-health"')[1].split("</td>")[0]
    assert "healthy" in db_health
    # the published port is a link on the host the browser used
    assert re.search(r'href="http://localhost:\d+/"', html)
    assert "restart" in html.split('id="r-crashy-state"')[1].split("</td>")[0]
    # counts by state at the top, in words
    counts = html.split('id="svc-counts"')[1].split("</p>")[0]
    assert "completed" in counts and "running" in counts and "not created" in counts
    # a stopped (by signal) long-running service is "stopped", not failed
    web_stack.compose("stop", "-t", "0", "worker")
    assert wait_state(client, "worker", "stopped")[1].startswith("stopped")


def test_poll_swaps_only_changed_rows(web_stack, web_app):
    client = sign_in(web_app, web_app.test_client(), "viewer")
    html = client.get("/services").get_data(as_text=True)
    versions = VERSION.findall(html)
    assert any(v.startswith("layout:") for v in versions) and any(v.startswith("r-web:") for v in versions)
    unchanged = client.get("/services/table", query_string={"v": versions})
    assert unchanged.status_code == 204
    web_stack.compose("up", "-d", "idle")

    def poll():
        r = client.get("/services/table", query_string={"v": versions})
        return r if r.status_code == 200 and 'id="r-idle-state"' in r.get_data(as_text=True) else None

    body = wait_for(poll, timeout=20, interval=0.3, message="idle row update").get_data(as_text=True)
    assert "<html" not in body
    assert 'id="r-idle-state" class="c-state" data-label="State" hx-swap-oob="true"' in body
    assert "<template>" in body and 'id="r-web-state"' not in body
    assert 'id="svc-table"' not in body  # the table itself (and open menus in it) stays
    assert 'id="svc-counts"' in body  # "1 running" is new


def test_engine_down_shows_banner_and_recovers(app_factory, web_stack, engine_proxy):
    app = app_for(app_factory, web_stack, env={"DOCKER_HOST": engine_proxy.docker_host})
    client = sign_in(app, app.test_client(), "viewer")
    web_stack.compose("up", "-d", "worker", "db")
    wait_state(client, "worker", "running")
    engine_proxy.stop()
    page = client.get("/services")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Docker engine unreachable" in html
    assert states(client)["worker"] == ("unknown", "unknown")  # the model is still shown
    versions = VERSION.findall(html)
    engine_proxy.start()

    def recovered():
        r = client.get("/services/table", query_string={"v": versions})
        text = r.get_data(as_text=True)
        return r.status_code == 200 and 'id="svc-banner"' in text and "unreachable" not in text

    wait_for(recovered, timeout=20, interval=0.3, message="banner cleared")
    assert states(client)["worker"][0] == "running"


def test_broken_compose_file_shows_the_reason(make_stack, app_factory):
    bad = "services:\n  a:\n    image: {image}\n    ports: ['nope:x:y:z']\n"
    proj = make_stack({"docker-compose.yml": bad}, name="broken")
    app = app_for(app_factory, proj)
    client = sign_in(app, app.test_client(), "admin")
    page = client.get("/services")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "The compose files are not valid" in text and "invalid IP address" in text
    assert client.get("/graph/").status_code == 200


@pytest.mark.parametrize("role,status", [("viewer", 403), ("operator", 200)])
def test_viewers_see_operators_act(web_app, role, status):
    client = sign_in(web_app, web_app.test_client(), role)
    assert client.get("/services").status_code == 200
    html = client.get("/services").get_data(as_text=True)
    assert ("hx-post" in html) == (role == "operator")
    r = client.post("/services/idle/stop")
    assert r.status_code == status
    if status == 200:
        from tests.services.conftest import finish

        finish(r)
