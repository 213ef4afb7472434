"""Sign-in, the users page and the account page in Chromium against the real server.

Set STACKPILOT_SHOTS=/tmp/shots/access to also save each page light/dark at 390 and 1280 px.
"""

from __future__ import annotations

import pytest

from app.store import Store
from tests.support.live import TEST_PASSWORD
from tests.support.screens import shoot

pytestmark = pytest.mark.browser


def test_sign_in_manage_users_and_change_password(page, server):
    pg = page.page
    pg.goto(server.url + "/services")
    assert "/login" in pg.url
    shoot(pg, "login")
    server.session("admin", "admin")  # makes the user
    pg.fill("#username", "admin")
    pg.fill("#password", "not-the-password")
    pg.click("button[type=submit]")
    assert "Wrong username or password" in pg.inner_text(".form-error")
    shoot(pg, "login-error")
    pg.fill("#password", TEST_PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(server.url + "/services")

    pg.goto(server.url + "/users")
    pg.fill("#new-username", "olga")
    pg.fill("#new-password", "olga-password-12")
    pg.select_option("#new-role", "operator")
    pg.click("button:has-text('Add user')")
    pg.wait_for_selector("text=Added olga")
    store = Store(server.data_dir / "stackpilot.sqlite3")
    assert store.user_by_name("olga").role == "operator"
    olga = store.user_by_name("olga")
    pg.select_option(f"#role-{olga.id}", "viewer")
    pg.wait_for_function(
        f"document.querySelector('#role-{olga.id}') && document.querySelector('#role-{olga.id}').value === 'viewer'"
    )
    page_store_role = lambda: Store(server.data_dir / "stackpilot.sqlite3").user_by_name("olga").role  # noqa: E731
    from tests.support.live import wait_for

    wait_for(lambda: page_store_role() == "viewer", message="role saved")
    pg.click(f"#user-{olga.id} summary")
    shoot(pg, "users")
    pg.fill(f"#reset-{olga.id}", "olgas-new-password")
    pg.click(f"#user-{olga.id} button:has-text('Set')")
    pg.wait_for_selector("text=New password set for olga")
    me = store.user_by_name("admin")
    pg.once("dialog", lambda d: d.accept())
    pg.click(f"#user-{me.id} button:has-text('Remove')")
    pg.wait_for_selector(".alert-error")
    assert "last admin" in pg.inner_text(".alert-error")
    shoot(pg, "users-last-admin")

    pg.goto(server.url + "/account")
    shoot(pg, "account")
    pg.fill("#current", TEST_PASSWORD)
    pg.fill("#new", "a-brand-new-password")
    pg.fill("#confirm", "a-brand-new-password")
    pg.click("button:has-text('Change password')")
    pg.wait_for_selector("text=Password changed")
    shoot(pg, "account-done")
    errors = [e for e in page.console_errors if "status of 4" not in e and "Response Status Error Code 4" not in e]
    assert errors == []
