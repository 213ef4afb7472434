"""In Chromium against the real server: start a stopped service with a click and watch its row
turn running without a reload; run `up` and watch its progress panel finish."""

from __future__ import annotations

import pytest

from app.store import Store
from tests.support.live import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_start_from_the_table_and_follow_an_up(web_stack, server_factory, page):
    web_stack.compose("up", "-d", "worker")
    web_stack.compose("stop", "-t", "0", "worker")
    server = server_factory(stack_dir=web_stack.dir)
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": web_stack.project, "files": [], "profiles": []})
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
    wait_for(lambda: pg.locator("#r-web-state .badge").get_attribute("data-state") == "running",
             timeout=20, message="web row running")
    assert not [e for e in page.console_errors if "favicon" not in e], page.console_errors
