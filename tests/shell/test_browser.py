"""The terminal in a real browser: xterm.js under the strict CSP, typing a command, seeing its output."""

from __future__ import annotations

import pytest

from tests.support.screens import shoot

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def test_typing_in_xterm_shows_the_output(shell_server, box, page):
    server = shell_server(box)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/services")
    pg.click("#menu-box summary")
    pg.click("#menu-box [data-action=shell]")
    pg.wait_for_selector("#shell-state[data-state=live]", timeout=15000)
    assert pg.inner_text("#shell-workdir") == "/srv"
    pg.click("#shell-term")
    pg.keyboard.type("echo typed-$((20+3))")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#shell-term .xterm-rows:has-text('typed-23')", timeout=10000)
    # the terminal fills its box: xterm measured real cells (its <style> elements passed the CSP)
    width = pg.evaluate("document.querySelector('#shell-term .xterm-screen').getBoundingClientRect().width")
    box_width = pg.evaluate("document.querySelector('#shell-term').getBoundingClientRect().width")
    assert box_width * 0.9 < width <= box_width
    shoot(pg, "shell-terminal", height=800)
    assert page.console_errors == []
    # a stopped service's page says why there is no shell
    pg.goto(server.url + "/shell/idle")
    assert "is not running" in pg.inner_text("#shell-why")
