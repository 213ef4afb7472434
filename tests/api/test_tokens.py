"""Tokens: made on the account page and shown once, roles, expiry, revocation, pages and cookies."""

from __future__ import annotations

import re

import requests

PROBLEM = "application/problem+json"
TOKEN_RE = re.compile(r'value="(spt_[A-Za-z0-9_-]+)"')


def test_account_page_makes_shows_once_and_revokes(api_server):
    s = api_server.server.session("tokenowner", "operator")
    page = s.post(
        api_server.url + "/account/tokens",
        data={"name": "gui", "role": "admin", "days": "30", "csrf_token": s.csrf},
        timeout=10,
    )
    assert page.status_code == 422 and "higher role" in page.text  # no higher than the owner's
    page = s.post(
        api_server.url + "/account/tokens",
        data={"name": "gui", "role": "operator", "days": "30", "csrf_token": s.csrf},
        timeout=10,
    )
    assert page.status_code == 200
    plain = TOKEN_RE.search(page.text).group(1)
    again = s.get(api_server.url + "/account", timeout=10).text
    assert plain not in again and "gui" in again  # shown once; listed by name
    stored = api_server.store.select("SELECT hash FROM api_tokens WHERE name = 'gui'")[0]["hash"]
    assert plain not in stored and len(stored) == 64

    bearer = {"Authorization": f"Bearer {plain}"}
    assert requests.get(api_server.url + "/api/v1/stacks", headers=bearer, timeout=10).status_code == 200
    row = api_server.store.select("SELECT last_used_at, last_used_from FROM api_tokens WHERE name = 'gui'")[0]
    assert row["last_used_at"] and row["last_used_from"] == "127.0.0.1"
    # a token never opens a page
    r = requests.get(api_server.url + "/services", headers=bearer, timeout=10, allow_redirects=False)
    assert r.status_code in (302, 303) and "/login" in r.headers["Location"]

    token_id = re.search(r"/account/tokens/(\d+)/revoke", again).group(1)
    r = s.post(f"{api_server.url}/account/tokens/{token_id}/revoke", data={"csrf_token": s.csrf}, timeout=10)
    assert r.status_code == 200
    r = requests.get(api_server.url + "/api/v1/stacks", headers=bearer, timeout=10)
    assert r.status_code == 401 and r.headers["Content-Type"] == PROBLEM
    assert "invalid_token" in r.headers["WWW-Authenticate"]


def test_expired_and_unknown_tokens_are_refused(api_server):
    plain = api_server.token("viewer", days=1)
    with api_server.store.transaction() as conn:
        conn.execute(
            "UPDATE api_tokens SET expires_at = 1 WHERE hash = (SELECT hash FROM api_tokens ORDER BY id DESC LIMIT 1)"
        )
    for token in (plain, "spt_" + "x" * 43, "nonsense"):
        r = requests.get(api_server.url + "/api/v1/stacks", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 401, token
        assert r.json()["status"] == 401


def test_roles(api_server):
    viewer = api_server.client("viewer")
    assert viewer.get(api_server.api("/status"), timeout=10).status_code == 200
    r = viewer.post(api_server.api("/services/db/restart"), timeout=10)
    assert r.status_code == 403 and r.headers["Content-Type"] == PROBLEM and "operator" in r.json()["detail"]
    assert viewer.post(api_server.api("/groups/core/stop"), timeout=10).status_code == 403
    assert viewer.get(api_server.api("/runs/whatever"), timeout=10).status_code == 403
    # a demoted owner demotes the token
    plain = api_server.token("operator", username="demoted")
    user = api_server.store.user_by_name("demoted")
    api_server.store.set_role(user.id, "viewer")
    r = requests.post(api_server.api("/services/db/restart"), headers={"Authorization": f"Bearer {plain}"}, timeout=10)
    assert r.status_code == 403


def test_limited_user_sees_only_their_stacks(api_server):
    plain = api_server.token("operator", username="limited")
    user = api_server.store.user_by_name("limited")
    with api_server.store.transaction() as conn:
        conn.execute("INSERT INTO user_stacks (user_id, stack) VALUES (?, 'some-other-stack')", (user.id,))
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {plain}"
    assert s.get(api_server.url + "/api/v1/stacks", timeout=10).json()["stacks"] == []
    slug = api_server.client().get(api_server.url + "/api/v1/stacks", timeout=10).json()["stacks"][0]["name"]
    r = s.get(f"{api_server.url}/api/v1/stacks/{slug}/status", timeout=10)
    assert r.status_code == 404 and r.headers["Content-Type"] == PROBLEM


def test_cookie_writes_need_csrf(api_server):
    s = api_server.server.session("admin", "admin")
    assert s.get(api_server.api("/status"), timeout=10).status_code == 200
    del s.headers["X-CSRF-Token"]
    r = s.post(api_server.api("/services/nope/restart"), timeout=10)
    assert r.status_code == 403 and r.headers["Content-Type"] == PROBLEM
    r = requests.get(api_server.api("/status"), timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_errors_are_problems_and_nothing_runs(api_server):
    s = api_server.client("admin")
    before = api_server.store.select("SELECT COUNT(*) AS n FROM audit")[0]["n"]
    for method, path, code in [
        ("get", "/api/v1/stacks/no-such-stack/status", 404),
        ("post", "/api/v1/stacks/-/services/--remove-orphans/stop", 404),
        ("post", "/api/v1/stacks/-/services/nope/restart", 404),
        ("post", "/api/v1/stacks/-/groups/nope/start", 404),
        ("get", "/api/v1/stacks/-/services/nope/logs", 404),
        ("post", "/api/v1/stacks/-/services/db/stop?timeout=999", 422),
        ("post", "/api/v1/stacks/-/up?profiles=nope", 422),
        ("get", "/api/v1/stacks/-/services/db/logs?tail=-4", 422),
        ("get", "/api/v1/stacks/-/runs/nope", 404),
    ]:
        r = getattr(s, method)(api_server.url + path, timeout=10)
        assert r.status_code == code, (path, r.text)
        body = r.json()
        assert r.headers["Content-Type"] == PROBLEM and body["status"] == code and body["detail"], path
    after = api_server.store.select("SELECT COUNT(*) AS n FROM audit")[0]["n"]
    assert after == before  # nothing ran, nothing to audit


def test_rate_limit_window():
    from app.errors import RateLimited
    from app.tokens import RateLimit

    limit = RateLimit(3, window=10)
    for t in (0, 1, 2):
        limit.hit("k", now=t)
    try:
        limit.hit("k", now=3)
        raise AssertionError("a fourth request in the window passed")
    except RateLimited as e:
        assert e.retry_after == 7
    limit.hit("other", now=3)  # another key has its own budget
    limit.hit("k", now=10.5)  # the first one left the window
