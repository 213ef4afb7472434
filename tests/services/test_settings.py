"""Stack settings are edited by admins, tried with Compose before saving, and audited; they share
the wizard's model of files (every compose file ticked in order) and profiles (a multi-choice,
exclusive ones as a choice among themselves, COMPOSE_PROFILES written back)."""

from __future__ import annotations

from tests.conftest import sign_in
from tests.services import stacks
from tests.services.conftest import app_for
from tests.services.conftest import states


def include_stack(make_stack):
    return make_stack(
        {
            "docker-compose.yml": stacks.INCLUDE_MAIN,
            "extra/compose.extra.yml": stacks.INCLUDE_EXTRA,
            "docker-compose.override.private.yml": stacks.OVERRIDE,
        },
        name="set",
    )


def test_admin_saves_ordered_files_and_profiles(make_stack, app_factory):
    proj = include_stack(make_stack)
    app = app_for(app_factory, proj)
    admin = sign_in(app, app.test_client(), "admin")
    form = admin.get("/stack/settings").get_data(as_text=True)
    # every compose file of the folder is offered, subfolders included
    assert 'value="docker-compose.override.private.yml"' in form and 'value="extra/compose.extra.yml"' in form
    r = admin.post(
        "/stack/settings",
        data={
            "project": proj.project,
            "file": ["docker-compose.override.private.yml", "docker-compose.yml"],
            "pos_docker-compose.yml": "1",
            "pos_docker-compose.override.private.yml": "2",
            "other_profiles": "cpu",
        },
    )
    assert r.status_code == 303, r.get_data(as_text=True)
    saved = app.extensions["stackpilot.store"].get_setting("stack")
    files = ["docker-compose.yml", "docker-compose.override.private.yml"]  # in the order typed
    assert saved == {"project": proj.project, "files": files, "profiles": ["cpu"]}
    page = admin.get("/services").get_data(as_text=True)
    assert 'data-group="apps"' in page and set(states(admin)) == {"app", "sidecar"}
    events = [(e.action, e.result) for e in app.extensions["stackpilot.store"].audit_events()]
    assert ("stack.settings", "ok") in events


def test_bad_settings_are_refused_and_not_saved(make_stack, app_factory):
    proj = include_stack(make_stack)
    app = app_for(app_factory, proj)
    admin = sign_in(app, app.test_client(), "admin")
    proj.write(
        "broken.yml", "services:\n  x:\n    image: {image}\n    ports: ['nope:x:y:z']\n".replace("{image}", "img")
    )
    for data, words in [
        ({"project": "Bad Name!"}, "project name"),
        ({"project": proj.project, "file": "../../etc/passwd"}, "not a file in the stack folder"),
        ({"project": proj.project, "file": "broken.yml"}, "not valid"),
        ({"project": proj.project, "other_profiles": "a;rm"}, "not a valid profile"),
    ]:
        r = admin.post("/stack/settings", data=data)
        assert r.status_code == 422 and words in r.get_data(as_text=True), (data, r.status_code)
    assert app.extensions["stackpilot.store"].get_setting("stack")["files"] == []


def test_exclusive_profiles_are_one_choice_and_compose_profiles_is_written_back(make_stack, app_factory):
    proj = make_stack(
        {
            "docker-compose.yml": stacks.fill(stacks.PROFILES, shared="sp-shared-ollama")
            + "  extra:\n    image: {image}\n    profiles: [extra]\n",
            ".env": "# which profiles\nCOMPOSE_PROFILES=cpu\nOTHER=1\n",
        },
        name="excl",
    )
    app = app_for(app_factory, proj)
    admin = sign_in(app, app.test_client(), "admin")
    page = admin.get("/stack/settings").get_data(as_text=True)
    assert 'name="group_0" value="cpu" checked' in page  # preset from COMPOSE_PROFILES in .env
    assert 'name="group_0" value="gpu-amd"' in page and 'name="profile" value="extra"' in page
    assert "adds ollama-gpu-amd" in page
    r = admin.post("/stack/settings", data={"project": proj.project, "profile": ["cpu", "gpu-amd"]})
    assert r.status_code == 422 and "cannot run together" in r.get_data(as_text=True)
    r = admin.post("/stack/settings", data={"project": proj.project, "group_0": "gpu-amd", "profile": "extra"})
    assert r.status_code == 303
    assert app.extensions["stackpilot.store"].get_setting("stack")["profiles"] == ["extra", "gpu-amd"]
    env = (proj.dir / ".env").read_text()
    assert env == "# which profiles\nCOMPOSE_PROFILES=extra,gpu-amd\nOTHER=1\n"  # one line changed
    assert list((proj.dir / ".env_backups").iterdir())  # the old .env kept


def test_only_admins_change_settings(make_stack, app_factory):
    proj = include_stack(make_stack)
    app = app_for(app_factory, proj)
    operator = sign_in(app, app.test_client(), "operator")
    assert operator.get("/stack/settings").status_code == 403
    assert operator.post("/stack/settings", data={"project": "x"}).status_code == 403
    assert "Stack settings" not in operator.get("/services").get_data(as_text=True)


def test_a_profile_of_a_newly_ticked_file_is_accepted(make_stack, app_factory):
    proj = make_stack(
        {
            "docker-compose.yml": "services:\n  app:\n    image: {image}\n",
            "docker-compose.gpu.yml": "services:\n  gpu:\n    image: {image}\n    profiles: [gpu]\n",
        }
    )
    app = app_for(app_factory, proj)
    admin = sign_in(app, app.test_client(), "admin")
    r = admin.post(
        "/stack/settings",
        data={"project": proj.project, "profile": "gpu", "file": ["docker-compose.yml", "docker-compose.gpu.yml"]},
    )
    assert r.status_code == 303, r.get_data(as_text=True)
    assert app.extensions["stackpilot.store"].get_setting("stack")["profiles"] == ["gpu"]
