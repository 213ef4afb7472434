"""The viewer in real Chromium: lines appear live, pause holds them (with a counter), search
narrows and highlights, resume catches up; no console errors or CSP violations."""

from __future__ import annotations

import pytest

from tests.support.live import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_logs_page_live_pause_search_resume(logs_server, ticker, page):
    server = logs_server(ticker)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/logs/ticker")
    lines = pg.locator("#logs-out .ln")
    wait_for(lambda: lines.count() >= 3, timeout=15, message="lines in the page")
    first = lines.count()
    wait_for(lambda: lines.count() > first, timeout=10, message="a live line")
    assert pg.locator("#logs-state").get_attribute("data-state") == "live"

    pg.click("#logs-pause")
    assert pg.locator("#logs-pause").inner_text() == "Resume"
    wait_for(lambda: "waiting" in pg.locator("#logs-pending").inner_text(), timeout=10, message="a waiting count")
    held = lines.count()
    wait_for(
        lambda: int(pg.locator("#logs-pending").inner_text().split()[0]) >= 3, timeout=10, message="three lines waiting"
    )
    assert lines.count() == held

    pg.click("#logs-pause")
    wait_for(lambda: lines.count() >= held + 3, timeout=5, message="held lines shown on resume")
    assert pg.locator("#logs-pending").inner_text() == ""

    pg.fill("#logs-q", "/tick \\d*7$/")
    wait_for(
        lambda: lines.count() >= 1 and all(t.endswith("7") for t in lines.locator(".msg").all_inner_texts()),
        timeout=15,
        message="only matching lines",
    )
    assert pg.locator("#logs-out .ln mark").first.inner_text().startswith("tick")

    pg.fill("#logs-q", "/(oops/")
    wait_for(
        lambda: "Invalid regular expression" in pg.locator("#logs-q-error").inner_text(),
        timeout=10,
        message="inline regex message",
    )
    assert page.console_errors == []


def test_logs_page_renders_styles_escapes_and_stderr_from_line_frames(logs_server, talker, page):
    from tests.support.screens import shoot

    server = logs_server(talker)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/logs/talker?tail=all")
    wait_for(lambda: "READY" in pg.locator("#logs-out").inner_text(), timeout=15, message="the talker's lines")
    assert pg.locator("#logs-out .ln .msg span.a-f1").first.inner_text() == "red text"
    assert pg.locator("#logs-out script").count() == 0
    assert pg.locator("#logs-out .msg", has_text='<script>alert(1)</script> & "quotes"').count() == 1
    err = pg.locator("#logs-out .ln.err")
    assert err.count() == 1 and "to stderr" in err.inner_text() and err.locator(".stream").text_content() == "err"
    assert pg.locator("#logs-out .ln .ts").first.get_attribute("datetime").endswith("Z")
    assert page.console_errors == []
    pg.evaluate("document.getElementById('logs-out').scrollTop = 0")
    shoot(pg, "logs-talker")
