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


def test_failed_backup_banner_and_down_choices(backup_server, small_stack, page):
    """Issue 15: the services page shows a failed backup until marked seen; Down offers Back up first."""
    compose = small_stack.dir / "docker-compose.yml"
    labelled = "    stop_grace_period: 1s\n    labels:\n      stackpilot.backup: dump\n"
    compose.write_text(compose.read_text().replace("    stop_grace_period: 1s\n", labelled, 1))
    server = backup_server(small_stack)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/backups/")
    pg.click("#bk-all")
    pg.wait_for_selector("#bk-list tr[data-status=failed]", timeout=30000)
    pg.goto(server.url + "/services")
    pg.wait_for_selector("[data-backup-failed]")
    pg.click("#act-down summary")
    pg.wait_for_selector("[data-action=backup-first]")
    shoot(pg, "services-backup-failed", height=800)
    pg.click("[data-action=backup-seen]")
    pg.wait_for_selector("[data-backup-failed]", state="detached", timeout=10000)
    assert page.console_errors == []
