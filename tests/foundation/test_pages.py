import pytest
from flask import Flask

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _get_routes(app: Flask):
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.websocket:
            yield rule.rule


def test_security_headers_on_every_page(app, admin_client):
    for path in list(_get_routes(app)) + ["/no-such-page"]:
        r = admin_client.get(path)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (path, name)


def test_404_is_a_friendly_page(admin_client):
    r = admin_client.get("/no-such-page")
    assert r.status_code == 404
    assert "<html" in r.get_data(as_text=True) and "Page not found" in r.get_data(as_text=True)


def test_404_for_htmx_is_an_alert_fragment_retargeted(admin_client):
    r = admin_client.get("/no-such-page", headers={"HX-Request": "true"})
    body = r.get_data(as_text=True)
    assert r.status_code == 404 and "<html" not in body and 'class="alert alert-error"' in body
    assert r.headers["HX-Retarget"] == "#alerts"


def test_unexpected_error_shows_no_traceback(app):
    @app.get("/__boom")
    def boom():
        raise RuntimeError("secret internals")

    from tests.conftest import sign_in

    client = sign_in(app, app.test_client())
    r = client.get("/__boom")
    body = r.get_data(as_text=True)
    assert r.status_code == 500 and "Unexpected error" in body
    assert "secret internals" not in body and "Traceback" not in body


def test_static_vendor_files_keep_licence_headers(client):
    for path in ("/static/vendor/htmx.min.js",):
        r = client.get(path)
        assert r.status_code == 200 and b"Zero-Clause BSD" in r.data[:300]


@pytest.mark.parametrize("path", ["/services", "/logs/", "/config/", "/graph/"])
def test_pages_need_a_session(client, path):
    r = client.get(path)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_post_without_csrf_token_is_refused(app):
    from tests.conftest import sign_in

    client = sign_in(app, app.test_client())
    client.environ_base.pop("HTTP_X_CSRF_TOKEN")
    r = client.post("/logout")
    assert r.status_code == 403


def test_post_from_foreign_origin_is_refused(admin_client):
    r = admin_client.post("/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_404_page_keeps_the_signed_in_navigation(admin_client):
    body = admin_client.get("/no-such-page").get_data(as_text=True)
    assert 'class="mainnav"' in body and "Sign out" in body
