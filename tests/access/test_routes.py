"""The route inventory: every route in the URL map, present and future, is checked generically.

Expectations are derived from each view: `stackpilot_public` (only an explicit short list may
carry it), `stackpilot_until_claimed` (setup only), `stackpilot_role` set by @require_role, and the
HTTP method (GET needs a session = viewer; every unsafe method must declare a role). A new route
without protection makes these tests fail.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from app.web.security import ROLES
from app.web.security import UNSAFE_METHODS
from tests.conftest import sign_in

PUBLIC = {"static", "auth.login", "api.health", "probes.livez", "probes.readyz", "metrics.metrics"}  # issue 16
UNTIL_CLAIMED = {"setup.index", "setup.claim"}
ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def _path(rule) -> str:
    def fill(m):
        return {
            "int": "999999",
            "float": "1.5",
            "path": "x/y",
            "uuid": "00000000-0000-0000-0000-000000000000",
        }.get(m.group(1), "x")

    return ARG.sub(fill, rule.rule)


def _view(app, rule):
    return app.view_functions[rule.endpoint]


def _methods(rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def _cases(app):
    """(rule, method, required role or None for public) for every route and method."""
    for rule in app.url_map.iter_rules():
        view = _view(app, rule)
        for method in _methods(rule):
            if rule.endpoint in PUBLIC:
                yield rule, method, None
                continue
            role = getattr(view, "stackpilot_role", None)
            if role is None and method in UNSAFE_METHODS:
                pytest.fail(f"{method} {rule.rule} ({rule.endpoint}) changes state without @require_role")
            yield rule, method, role or "viewer"


@pytest.fixture
def stack_app(app_factory, make_stack):
    """The app with a real (not started) stack folder, so every area's pages have something to read."""
    proj = make_stack(
        {
            "docker-compose.yml": "services:\n  web:\n    image: {image}\n    pull_policy: never\n"
            "    command: sleep 300\n",
            ".env": "A=1\n",
        }
    )
    return app_factory(stack_dir=proj.dir)


def test_only_the_known_routes_are_public(app):
    for rule in app.url_map.iter_rules():
        view = _view(app, rule)
        if getattr(view, "stackpilot_public", False) or rule.endpoint == "static":
            assert rule.endpoint in PUBLIC, f"{rule.rule} is public but not on the reviewed list"
        if getattr(view, "stackpilot_until_claimed", False):
            assert rule.endpoint in UNTIL_CLAIMED, f"{rule.rule} is open before the claim"
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert PUBLIC <= endpoints and UNTIL_CLAIMED <= endpoints


def test_every_route_refuses_anonymous_use(stack_app):
    store = stack_app.extensions["stackpilot.store"]
    sign_in(stack_app, stack_app.test_client(), "admin")  # claimed: /setup is closed too
    assert store.count_users("admin") == 1
    checked = 0
    for rule, method, role in _cases(stack_app):
        if role is None:
            continue
        client = stack_app.test_client()
        path = _path(rule)
        if rule.websocket:
            r = client.get(path, headers={**WS_HEADERS, "Origin": "http://localhost"})
            assert r.status_code == 401, (path, r.status_code)
        elif method in UNSAFE_METHODS:
            # Even with a valid CSRF token, no session means no entry.
            with client.session_transaction() as s:
                s["csrf"] = "anon-token"
            r = client.open(path, method=method, headers={"X-CSRF-Token": "anon-token"})
            assert r.status_code in (302, 401), (method, path, r.status_code)
        else:
            r = client.open(path, method=method)
            if path.startswith("/api/"):
                assert r.status_code == 401, (path, r.status_code)
            else:
                assert r.status_code == 302 and "/login" in r.headers["Location"], (path, r.status_code)
        checked += 1
    assert checked >= 10


def test_setup_is_public_only_until_claimed(app, client):
    assert client.get("/setup/").status_code == 200
    sign_in(app, app.test_client(), "admin")
    r = client.get("/setup/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


@pytest.mark.parametrize("signed_in_as", ["viewer", "operator"])
def test_roles_below_the_required_one_are_refused_everywhere(stack_app, signed_in_as):
    sign_in(stack_app, stack_app.test_client(), "admin", username="the-admin")
    client = sign_in(stack_app, stack_app.test_client(), signed_in_as)
    checked = 0
    for rule, method, role in _cases(stack_app):
        if role is None or ROLES[signed_in_as] >= ROLES[role]:
            continue
        path = _path(rule)
        headers = {**WS_HEADERS, "Origin": "http://localhost"} if rule.websocket else {}
        r = client.open(path, method=method, headers=headers)
        assert r.status_code == 403, (signed_in_as, method, path, r.status_code)
        checked += 1
    if signed_in_as == "viewer":
        assert checked >= 5  # at least the user admin and account actions exist


@pytest.mark.parametrize("signed_in_as", ["viewer", "operator", "admin"])
def test_pages_open_for_the_roles_they_allow(stack_app, signed_in_as):
    sign_in(stack_app, stack_app.test_client(), "admin", username="the-admin")
    client = sign_in(stack_app, stack_app.test_client(), signed_in_as)
    for rule, method, role in _cases(stack_app):
        if method != "GET" or rule.websocket or rule.arguments or role is None:
            continue
        if ROLES[signed_in_as] < ROLES[role]:
            continue
        r = client.get(_path(rule))
        assert r.status_code not in (401, 403), (signed_in_as, rule.rule, r.status_code)
        assert "/login" not in r.headers.get("Location", ""), rule.rule


def test_unsafe_routes_refuse_missing_csrf_and_foreign_origin(stack_app):
    client = sign_in(stack_app, stack_app.test_client(), "admin")
    client.environ_base.pop("HTTP_X_CSRF_TOKEN")
    store = stack_app.extensions["stackpilot.store"]
    users_before = [u.username for u in store.users()]
    checked = 0
    for rule, method, _role in _cases(stack_app):
        path = _path(rule)
        if rule.websocket:
            for origin in ("https://evil.example", "null"):
                r = client.get(path, headers={**WS_HEADERS, "Origin": origin})
                assert r.status_code == 403, (path, origin, r.status_code)
            r = client.get(path, headers={**WS_HEADERS, "Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 403, path
            continue
        if method not in UNSAFE_METHODS:
            continue
        no_token = client.open(path, method=method, data={"username": "mallory"})
        assert no_token.status_code == 403, ("no CSRF", method, path, no_token.status_code)
        wrong = client.open(path, method=method, headers={"X-CSRF-Token": "forged"})
        assert wrong.status_code == 403, ("wrong CSRF", method, path)
        foreign = client.open(
            path, method=method, headers={"X-CSRF-Token": "test-csrf-token", "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403, ("foreign Origin", method, path, foreign.status_code)
        cross = client.open(
            path, method=method, headers={"X-CSRF-Token": "test-csrf-token", "Sec-Fetch-Site": "cross-site"}
        )
        assert cross.status_code == 403, ("cross-site", method, path)
        checked += 1
    assert checked >= 5
    assert [u.username for u in store.users()] == users_before


def _snapshot(app, stack_dir):
    conn = sqlite3.connect(app.config["SETTINGS"].database_path)
    try:
        db = {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()  # noqa: S608 - fixed names
            for t in ("users", "settings", "audit")
        }
        db["sessions"] = conn.execute("SELECT id, user_id FROM sessions ORDER BY 1").fetchall()
        # A cache, not a change a request could be forged into: the last project name Compose
        # accepted (app/stack/identity.py keeps it so a broken file does not rename the stack).
        db["settings"] = [row for row in db["settings"] if not row[0].startswith("stack.last_project")]
    finally:
        conn.close()
    files = {
        str(p.relative_to(stack_dir)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(stack_dir.rglob("*"))
    }
    return db, files


def test_no_state_changes_on_get(stack_app):
    stack_dir = stack_app.config["SETTINGS"].stack_dir
    client = sign_in(stack_app, stack_app.test_client(), "admin")
    before = _snapshot(stack_app, stack_dir)
    for rule in stack_app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.websocket and rule.endpoint != "static":
            client.get(_path(rule))
            client.get(_path(rule), headers={"HX-Request": "true"})
    assert _snapshot(stack_app, stack_dir) == before


def test_the_inventory_catches_an_unprotected_action(app_factory):
    """The inventory itself must fail on a new POST route without @require_role, or a new @public."""
    from app.web.security import public

    app = app_factory()

    @app.post("/__unprotected")
    def unprotected():
        return "changed"

    with pytest.raises(pytest.fail.Exception, match="without @require_role"):
        list(_cases(app))

    app2 = app_factory()

    @app2.get("/__open")
    @public
    def opened():
        return "open"

    with pytest.raises(AssertionError, match="not on the reviewed list"):
        test_only_the_known_routes_are_public(app2)


def test_every_socket_refuses_anonymous_and_foreign_origin_on_the_real_server(app, server):
    """The real waitress + WebSocket bridge: the handshake itself is refused, before any frame."""
    import simple_websocket

    sockets = [r for r in app.url_map.iter_rules() if r.websocket]
    assert sockets, "no WebSocket routes found"
    signed_in = server.session("admin", "admin")
    for rule in sockets:
        path = _path(rule)
        with pytest.raises(simple_websocket.ConnectionError):
            server.ws_connect(path)  # no session
        with pytest.raises(simple_websocket.ConnectionError):
            server.ws_connect(path, signed_in, origin="https://evil.example")
    ok = server.ws_connect("/api/ws/echo", signed_in)  # and the same socket opens when it should
    try:
        ok.send("ping")
        assert ok.receive(timeout=5) == "ping"
    finally:
        ok.close()
