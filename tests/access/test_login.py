"""Sign-in rate limits, sessions (logout, idle timeout, cookies) and password change."""

from __future__ import annotations

import re
import time

from app.store import Store
from tests.conftest import sign_in
from tests.support.live import TEST_PASSWORD
from tests.support.live import ensure_user

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def _login(client, username, password, **headers):
    page = client.get("/login")
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, headers=headers
    )


def _data(app):
    return app.config["SETTINGS"].data_dir


def test_five_failures_slow_down_that_address_only(app):
    ensure_user(_data(app), "admin", "admin")
    client = app.test_client()
    for _ in range(5):
        r = _login(client, "admin", "wrong-password-here")
        assert r.status_code == 422 and "Wrong username or password" in r.get_data(as_text=True)
    r = _login(client, "admin", TEST_PASSWORD)  # this address waits now, even with the right password
    body = r.get_data(as_text=True)
    assert r.status_code == 429 and re.search(r"Wait [1-5] seconds?", body) and 1 <= int(r.headers["Retry-After"]) <= 5
    assert client.get("/services").status_code == 302
    events = app.extensions["stackpilot.store"].audit_events()
    assert events[0].result == "throttled" and sum(e.result == "failed" for e in events) == 5
    # The owner at another address is not locked out.
    owner = app.test_client()
    owner.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert _login(owner, "admin", TEST_PASSWORD).status_code == 302


def test_per_address_limit_covers_many_usernames(app):
    ensure_user(_data(app), "admin", "admin")
    client = app.test_client()
    for i in range(20):
        assert _login(client, f"nobody{i}", "wrong-password-here").status_code == 422
    r = _login(client, "admin", TEST_PASSWORD)
    assert r.status_code == 429


def test_forwarded_for_is_ignored_from_untrusted_peers(app):
    ensure_user(_data(app), "admin", "admin")
    client = app.test_client()
    for i in range(5):
        _login(client, "admin", "wrong-password-here", **{"X-Forwarded-For": f"203.0.113.{i}"})
    r = _login(client, "admin", TEST_PASSWORD, **{"X-Forwarded-For": "203.0.113.99"})
    assert r.status_code == 429  # all five counted against 127.0.0.1, the real peer


def test_behind_the_trusted_proxy_each_client_is_counted_apart(app_factory):
    app = app_factory(STACKPILOT_TRUSTED_PROXIES="127.0.0.1")
    ensure_user(_data(app), "admin", "admin")
    client = app.test_client()
    for _ in range(5):
        _login(client, "admin", "wrong-password-here", **{"X-Forwarded-For": "198.51.100.7"})
    blocked = _login(client, "admin", TEST_PASSWORD, **{"X-Forwarded-For": "198.51.100.7"})
    assert blocked.status_code == 429
    other = _login(client, "admin", TEST_PASSWORD, **{"X-Forwarded-For": "198.51.100.8"})
    assert other.status_code == 302


def test_session_cookie_flags(app_factory):
    app = app_factory(STACKPILOT_TRUSTED_PROXIES="127.0.0.1")
    ensure_user(_data(app), "admin", "admin")
    plain = _login(app.test_client(), "admin", TEST_PASSWORD)
    cookie = plain.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    https = _login(app.test_client(), "admin", TEST_PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in https.headers["Set-Cookie"]


def test_logout_ends_the_server_side_session(app):
    client = sign_in(app, app.test_client(), "viewer")
    store: Store = app.extensions["stackpilot.store"]
    with client.session_transaction() as s:
        sid = s["sid"]
    assert client.get("/services").status_code == 200
    assert client.post("/logout").status_code == 302
    assert store.session_user(sid, 3600) is None
    assert client.get("/services").status_code == 302


def test_idle_session_expires(app_factory):
    app = app_factory(STACKPILOT_SESSION_IDLE_MINUTES="1")
    client = sign_in(app, app.test_client(), "admin")
    assert client.get("/services").status_code == 200
    store: Store = app.extensions["stackpilot.store"]
    with store.transaction() as conn:  # the session was last used two minutes ago
        conn.execute("UPDATE sessions SET last_seen = ?", (time.time() - 120,))
    r = client.get("/services")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_password_change_can_sign_out_other_sessions(app):
    ensure_user(_data(app), "admin", "admin")
    here, elsewhere, third = app.test_client(), app.test_client(), app.test_client()
    for c in (here, elsewhere, third):
        assert _login(c, "admin", TEST_PASSWORD).status_code == 302
    page = here.get("/account")
    csrf = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    wrong = here.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current": "nope-nope-nope",
            "new": "brand-new-password-1",
            "confirm": "brand-new-password-1",
        },
    )
    assert wrong.status_code == 422 and "current password is not right" in wrong.get_data(as_text=True)
    r = here.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current": TEST_PASSWORD,
            "new": "brand-new-password-1",
            "confirm": "brand-new-password-1",
            "logout_others": "1",
        },
    )
    assert r.status_code == 200 and "2 other sessions signed out" in r.get_data(as_text=True)
    assert here.get("/services").status_code == 200
    assert elsewhere.get("/services").status_code == 302 and third.get("/services").status_code == 302
    fresh = app.test_client()
    assert _login(fresh, "admin", TEST_PASSWORD).status_code == 422
    assert _login(fresh, "admin", "brand-new-password-1").status_code == 302


def test_signed_in_people_skip_the_login_form(app):
    sign_in(app, app.test_client(), "admin")
    client = sign_in(app, app.test_client(), "viewer")
    r = client.get("/login?next=/logs/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/logs/")
    r = client.get("/login?next=//evil.example/")
    assert r.status_code == 302 and "evil" not in r.headers["Location"]
