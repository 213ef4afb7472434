"""User administration: add, change role, remove; never without an admin; admin-only."""

from __future__ import annotations

import re

import pytest

from app.store import Store
from tests.conftest import sign_in

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
HX = {"HX-Request": "true", "HX-Target": "users"}


def _store(app) -> Store:
    return app.extensions["stackpilot.store"]


def test_admin_adds_a_user_who_can_sign_in_with_that_role(app):
    admin = sign_in(app, app.test_client(), "admin")
    r = admin.post("/users", data={"username": "olga", "password": "olga-password-12", "role": "operator"}, headers=HX)
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in body and "Added olga" in body
    assert _store(app).user_by_name("olga").role == "operator"
    fresh = app.test_client()
    token = CSRF_RE.search(fresh.get("/login").get_data(as_text=True)).group(1)
    assert (
        fresh.post("/login", data={"username": "olga", "password": "olga-password-12", "csrf_token": token}).status_code
        == 302
    )
    assert fresh.get("/users").status_code == 403
    assert _store(app).audit_events()[1].action == "user.add"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"username": "x y", "password": "long-enough-pass", "role": "viewer"}, "letters, digits"),
        ({"username": "short", "password": "tooshort", "role": "viewer"}, "at least 12"),
        ({"username": "roleless", "password": "long-enough-pass", "role": "root"}, "Unknown role"),
        ({"username": "ADMIN", "password": "long-enough-pass", "role": "viewer"}, "already a user"),
    ],
)
def test_bad_new_users_are_refused_with_the_reason(app, form, message):
    admin = sign_in(app, app.test_client(), "admin")
    r = admin.post("/users", data=form, headers=HX)
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert len(_store(app).users()) == 1


def test_role_change_applies_to_open_sessions_at_once(app):
    admin = sign_in(app, app.test_client(), "admin")
    viewer = sign_in(app, app.test_client(), "viewer", username="vera")
    vera = _store(app).user_by_name("vera")
    assert viewer.get("/users").status_code == 403
    assert admin.post(f"/users/{vera.id}/role", data={"role": "admin"}, headers=HX).status_code == 200
    assert viewer.get("/users").status_code == 200


def test_the_last_admin_can_be_neither_demoted_nor_removed(app):
    admin = sign_in(app, app.test_client(), "admin")
    me = _store(app).user_by_name("admin")
    r = admin.post(f"/users/{me.id}/role", data={"role": "viewer"}, headers=HX)
    assert r.status_code == 403 and "last admin" in r.get_data(as_text=True)
    r = admin.post(f"/users/{me.id}/remove", headers=HX)
    assert r.status_code == 403 and "last admin" in r.get_data(as_text=True)
    assert _store(app).user_by_name("admin").role == "admin"
    sign_in(app, app.test_client(), "admin", username="second")
    assert admin.post(f"/users/{me.id}/role", data={"role": "viewer"}, headers=HX).status_code == 200


def test_removing_a_user_ends_their_sessions(app):
    admin = sign_in(app, app.test_client(), "admin")
    operator = sign_in(app, app.test_client(), "operator", username="otto")
    otto = _store(app).user_by_name("otto")
    assert operator.get("/services").status_code == 200
    r = admin.post(f"/users/{otto.id}/remove", headers=HX)
    assert r.status_code == 200 and "otto" not in r.get_data(as_text=True)
    assert operator.get("/services").status_code == 302


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_manage_users(app, role):
    sign_in(app, app.test_client(), "admin")
    client = sign_in(app, app.test_client(), role)
    target = _store(app).user_by_name("admin")
    assert (
        client.post("/users", data={"username": "eve", "password": "eve-password-12", "role": "admin"}).status_code
        == 403
    )
    assert client.post(f"/users/{target.id}/role", data={"role": "viewer"}).status_code == 403
    assert client.post(f"/users/{target.id}/remove").status_code == 403
    assert _store(app).user_by_name("eve") is None and _store(app).user_by_name("admin").role == "admin"


def test_admin_sets_a_new_password_and_ends_that_users_sessions(app):
    admin = sign_in(app, app.test_client(), "admin")
    viewer = sign_in(app, app.test_client(), "viewer", username="vic")
    vic = _store(app).user_by_name("vic")
    r = admin.post(f"/users/{vic.id}/password", data={"password": "short"}, headers=HX)
    assert r.status_code == 422 and "at least 12" in r.get_data(as_text=True)
    assert viewer.get("/services").status_code == 200
    r = admin.post(f"/users/{vic.id}/password", data={"password": "vics-new-password"}, headers=HX)
    assert r.status_code == 200 and "New password set for vic" in r.get_data(as_text=True)
    assert viewer.get("/services").status_code == 302
    fresh = app.test_client()
    token = CSRF_RE.search(fresh.get("/login").get_data(as_text=True)).group(1)
    assert (
        fresh.post("/login", data={"username": "vic", "password": "vics-new-password", "csrf_token": token}).status_code
        == 302
    )
    assert viewer.post(f"/users/{vic.id}/password", data={"password": "x" * 20}).status_code == 302
