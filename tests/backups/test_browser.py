"""The Backups page in a real browser: Back up the whole stack, the row turning ok, the restore confirmation
(Back up now of one service is the same form with a service field: tests/backups/test_web.py)."""

from __future__ import annotations

import pytest

from tests.support.screens import shoot

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def test_back_up_now_and_confirm_a_restore(backup_server, small_stack, page):
    server = backup_server(small_stack)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/services")
    pg.click("#menu-web summary")
    pg.click("#menu-web [data-action=backup]")
    pg.wait_for_selector("#bk-svc-web")
    pg.click("#bk-all")
    pg.wait_for_selector("#bk-list tr[data-status=ok]", timeout=30000)
    pg.wait_for_selector("#bk-running", state="detached", timeout=30000)
    pg.click("#bk-list [data-restore=db]")
    pg.wait_for_selector("#bk-restore-go")
    assert f"volume {small_stack.project}_dbdata" in pg.inner_text(".bk-confirm")
    shoot(pg, "backups-page", height=1000)
    assert page.console_errors == []
