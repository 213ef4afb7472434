"""In Chromium against the real server: start a stopped service with a click and watch its row
turn running without a reload; run `up` and watch its progress panel finish."""

from __future__ import annotations

import pytest

from app.store import Store
from tests.support.live import wait_for
from tests.support.screens import shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_start_from_the_table_and_follow_an_up(web_stack, server_factory, page):
    web_stack.compose("up", "-d", "worker")
    web_stack.compose("stop", "-t", "0", "worker")
    server = server_factory(stack_dir=web_stack.dir)
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": web_stack.project, "files": [], "profiles": []}
    )
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/services")
    state = pg.locator("#r-worker-state .badge")
    assert state.get_attribute("data-state") == "stopped"

    pg.fill("#svc-filter", "work")  # the filter must survive the refreshes
    assert pg.locator("#r-db").is_hidden()
    marker = pg.evaluate("() => { window.__same_page = 1; return 1 }")
    pg.click("#menu-worker summary")
    pg.click("#menu-worker button[data-action=start]")
    pg.wait_for_selector(".run-panel")
    pg.wait_for_selector("#r-worker-state .badge[data-state=running]", timeout=30_000)
    assert pg.evaluate("() => window.__same_page") == marker  # no reload happened
    assert pg.input_value("#svc-filter") == "work" and pg.locator("#r-db").is_hidden()

    # a menu left open stays open across refreshes
    pg.fill("#svc-filter", "")
    pg.click("#menu-idle summary")
    pg.wait_for_timeout(2500)  # at least one poll of the table
    assert pg.locator("#menu-idle").get_attribute("open") is not None
    pg.keyboard.press("Escape")

    pg.click("#act-up summary")
    pg.click("#act-up button[data-action=up]")
    pg.wait_for_selector(".run-panel .run-title:has-text('up')")
    pg.wait_for_selector(".run-status .badge:has-text('exit code 0')", timeout=90_000)
    log = pg.locator(".run-log").inner_text()
    assert "Started" in log or "Running" in log or "Healthy" in log
    wait_for(
        lambda: pg.locator("#r-web-state .badge").get_attribute("data-state") == "running",
        timeout=20,
        message="web row running",
    )
    assert not [e for e in page.console_errors if "favicon" not in e], page.console_errors


def test_why_unhealthy_opens_with_the_keyboard_and_drift_is_marked(health_stack, server_factory, page):
    health_stack.compose("up", "-d", check=False)  # db never healthy: api stays created
    (health_stack.dir / ".env").write_text("GREETING=changed\n")  # cache now runs an older configuration
    server = server_factory(stack_dir=health_stack.dir)
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": health_stack.project, "files": [], "profiles": []}
    )
    page.sign_in(server)
    pg = page.page
    pg.on("dialog", lambda dialog: dialog.accept())
    pg.goto(server.url + "/services")
    pg.wait_for_selector("#health-db summary", timeout=20_000)
    assert pg.locator("#r-db-health .health-output").is_hidden()
    pg.focus("#health-db summary")
    pg.keyboard.press("Enter")
    output = pg.locator("#r-db-health .health-output")
    output.wait_for(state="visible")
    assert 'FATAL: database "app" is starting up' in output.inner_text()
    assert "exit code 3" in pg.locator("#r-db-health .why").inner_text()
    assert "blocked by db" in pg.locator("#r-api-state").inner_text()
    assert "runs an older configuration" in pg.locator("#r-cache-state .drift").inner_text()
    pg.wait_for_timeout(2500)  # a poll of the table went by: the box stays open
    assert pg.locator("#health-db").get_attribute("open") is not None
    shoot(pg, "services-health-drift")
    pg.goto(server.url + "/graph/")
    pg.wait_for_selector("svg.depgraph")
    assert "exit 3: FATAL" in pg.locator('.node[data-service="db"] .node-why').text_content()
    shoot(pg, "services-graph")

    pg.goto(server.url + "/services")
    pg.click("button[data-action=recreate-drifted]")
    pg.wait_for_selector(".run-status .badge:has-text('exit code 0')", timeout=60_000)
    pg.wait_for_selector("#r-cache-state .drift", state="detached", timeout=20_000)
    assert pg.locator("button[data-action=recreate-drifted]").count() == 0
    assert not [e for e in page.console_errors if "favicon" not in e], page.console_errors
