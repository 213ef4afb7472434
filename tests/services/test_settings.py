"""Stack settings are edited by admins, tried with Compose before saving, and audited."""

from __future__ import annotations

from tests.conftest import sign_in
from tests.services import stacks
from tests.services.conftest import app_for
from tests.services.conftest import states


def include_stack(make_stack):
    return make_stack({"docker-compose.yml": stacks.INCLUDE_MAIN,
                       "extra/compose.extra.yml": stacks.INCLUDE_EXTRA,
                       "docker-compose.override.private.yml": stacks.OVERRIDE}, name="set")


def test_admin_saves_ordered_files_and_profiles(make_stack, app_factory):
    proj = include_stack(make_stack)
    app = app_for(app_factory, proj)
    admin = sign_in(app, app.test_client(), "admin")
    form = admin.get("/stack/settings").get_data(as_text=True)
    assert "docker-compose.override.private.yml" in form  # offered as a candidate
    r = admin.post("/stack/settings", data={
        "project": proj.project, "files": "docker-compose.yml\ndocker-compose.override.private.yml\n",
        "other_profiles": "cpu"})
    assert r.status_code == 303
    saved = app.extensions["stackpilot.store"].get_setting("stack")
    files = ["docker-compose.yml", "docker-compose.override.private.yml"]
    assert saved == {"project": proj.project, "files": files, "profiles": ["cpu"]}
    page = admin.get("/services").get_data(as_text=True)
    assert 'data-group="apps"' in page and set(states(admin)) == {"app", "sidecar"}
    events = [(e.action, e.result) for e in app.extensions["stackpilot.store"].audit_events()]
    assert ("stack.settings", "ok") in events


def test_bad_settings_are_refused_and_not_saved(make_stack, app_factory):
    proj = include_stack(make_stack)
    app = app_for(app_factory, proj)
    admin = sign_in(app, app.test_client(), "admin")
    proj.write("broken.yml", "services:\n  x:\n    image: {image}\n    ports: ['nope:x:y:z']\n".replace(
        "{image}", "img"))
    for data, words in [
        ({"project": "Bad Name!", "files": ""}, "project name"),
        ({"project": proj.project, "files": "../../etc/passwd"}, "not a file in the stack folder"),
        ({"project": proj.project, "files": "broken.yml"}, "not valid"),
        ({"project": proj.project, "files": "", "other_profiles": "a;rm"}, "not a valid profile"),
    ]:
        r = admin.post("/stack/settings", data=data)
        assert r.status_code == 422 and words in r.get_data(as_text=True), (data, r.status_code)
    assert app.extensions["stackpilot.store"].get_setting("stack")["files"] == []


def test_only_admins_change_settings(make_stack, app_factory):
    proj = include_stack(make_stack)
    app = app_for(app_factory, proj)
    operator = sign_in(app, app.test_client(), "operator")
    assert operator.get("/stack/settings").status_code == 403
    assert operator.post("/stack/settings", data={"project": "x"}).status_code == 403
    assert "Stack settings" not in operator.get("/services").get_data(as_text=True)
