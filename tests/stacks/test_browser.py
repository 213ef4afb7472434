"""The home page and the stack switcher in Chromium: no console errors or CSP violations, the
switcher opens and leads to a stack's page. STACKPILOT_SHOTS=/tmp/shots saves each page
light/dark at 390 and 1280 px."""

from __future__ import annotations

import pytest

from tests.support.screens import shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_home_and_switcher(page, server_factory, stacks_root):
    root, (a, b, c) = stacks_root(3)
    a.compose("up", "-d")
    server = server_factory(STACKPILOT_STACKS_DIR=str(root))
    pg = page.page
    page.sign_in(server)
    pg.goto(server.url + "/")
    assert pg.locator(f"#stack-{a.project}").inner_text().count("running") == 1
    shoot(pg, "home")
    pg.click(".stackswitch summary")
    menu = pg.locator(".stackswitch .menu").inner_text()
    assert "All stacks" in menu and all(s.project in menu for s in (a, b, c))
    shoot(pg, "home-switcher")
    pg.click(f".stackswitch .menu a:has-text('{b.project}')")
    pg.wait_for_url(f"{server.url}/s/{b.project}/services")
    assert pg.locator(".stackswitch summary").inner_text().endswith(b.project)
    shoot(pg, "stack-page")
    assert page.console_errors == []
