"""Configuration over the API: admins only, secrets masked unless asked, If-Match, the editor's save."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def test_config_read_and_change(api_server):
    operator = api_server.client("operator")
    assert operator.get(api_server.api("/config"), timeout=10).status_code == 403  # operators cannot configure
    assert operator.patch(api_server.api("/config"), json={"values": {"GREETING": "x"}}, timeout=10).status_code == 403
    admin = api_server.client("admin")
    r = admin.get(api_server.api("/config"), timeout=10)
    assert r.status_code == 200
    values = {v["key"]: v for v in r.json()["variables"]}
    assert values["GREETING"]["value"] == "hello" and not values["GREETING"]["masked"]
    assert values["API_PASSWORD"]["masked"] and values["API_PASSWORD"]["value"] == "********"
    assert "first-secret-value-123" not in r.text
    revealed = admin.get(api_server.api("/config"), params={"reveal": 1}, timeout=10)
    assert "first-secret-value-123" in revealed.text
    etag = r.headers["ETag"]

    r = admin.patch(api_server.api("/config"), json={"values": {"GREETING": "bonjour"}}, timeout=30)
    assert r.status_code == 428 and r.headers["Content-Type"] == PROBLEM
    r = admin.patch(
        api_server.api("/config"), json={"values": {"GREETING": "bonjour"}}, headers={"If-Match": etag}, timeout=60
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["saved"] and body["changed"] == ["GREETING"] and body["affected_services"] == ["web"]
    assert body["backup"] and r.headers["ETag"] != etag
    text = (api_server.stack.dir / ".env").read_text()
    assert "GREETING=bonjour" in text and "API_PASSWORD=first-secret-value-123" in text  # the other line kept
    # the old version again: the file moved meanwhile, nothing written
    r = admin.patch(
        api_server.api("/config"), json={"values": {"GREETING": "hola"}}, headers={"If-Match": etag}, timeout=60
    )
    assert r.status_code == 409 and r.headers["Content-Type"] == PROBLEM
    assert "GREETING=bonjour" in (api_server.stack.dir / ".env").read_text()
    rows = api_server.store.select("SELECT username FROM audit WHERE action = 'api.config.save' AND result = 'ok'")
    assert rows and "(token " in rows[0]["username"]


def test_group_buttons_on_the_table(api_server):
    """The table's group headers carry start/stop for operators; the button's POST (a page request: cookie
    plus CSRF) answers the pages' progress panel, not JSON."""
    s = api_server.server.session("groupop", "operator")
    page = s.get(api_server.url + "/services", timeout=20).text
    assert "Start group" in page and "/groups/foundation/stop" in page
    url = next(m for m in page.split('"') if m.endswith("/groups/foundation/start"))
    r = s.post(api_server.url + url, headers={"HX-Request": "true"}, timeout=30)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"], r.text[:300]
    assert r.headers["HX-Trigger"] == "services-changed"
    viewer = api_server.server.session("groupviewer", "viewer")
    assert "Start group" not in viewer.get(api_server.url + "/services", timeout=20).text
