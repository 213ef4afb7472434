"""Many stacks in one Stackpilot, on the real engine and the real Compose: discovery of projects
the host CLI started, a stacks root of three, a pasted compose file, a stack from a local git
mirror, a stack seen only through its containers, and per-stack roles."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import PREFIX
from tests.conftest import sign_in
from tests.support.live import wait_for

pytestmark = pytest.mark.docker


def _home(client) -> str:
    r = client.get("/")
    assert r.status_code == 200
    return r.get_data(as_text=True)


def _row(html: str, slug: str) -> str:
    start = html.index(f'id="stack-{slug}"')
    return html[start : html.index("</tr>", start)]


def test_home_lists_projects_the_host_cli_started_and_opens_them(app_factory, stacks_root):
    _root, (one,) = stacks_root(1)
    one.compose("up", "-d")
    app = app_factory()  # nothing configured: the home page is the overview, never a dead end
    admin = sign_in(app, app.test_client())
    row = _row(_home(admin), one.project)
    assert "1 running" in row and str(one.dir) in row and "containers only" not in row
    page = admin.get(f"/s/{one.project}/services").get_data(as_text=True)
    assert 'id="r-talker' in page and one.project in page
    # the header's switcher offers it, and the old paths still say there is no default stack
    assert f'href="/s/{one.project}/services"' in page
    assert admin.get("/services").status_code == 200


def test_stack_whose_files_are_gone_is_shown_from_its_containers(app_factory, stacks_root, tmp_path):
    _root, (one,) = stacks_root(1)
    one.compose("up", "-d")
    shutil.move(one.dir, tmp_path / "moved-away")  # started elsewhere: the label's folder is not here
    app = app_factory()
    operator = sign_in(app, app.test_client(), "operator")
    assert "containers only" in _row(_home(operator), one.project)
    r = operator.get(f"/s/{one.project}/services")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/s/{one.project}/containers")
    page = operator.get(f"/s/{one.project}/containers").get_data(as_text=True)
    assert "not reachable from Stackpilot" in page and "Mount that folder" in page and "running" in page
    cid = re.search(r"/containers/([0-9a-f]{64})/stop", page)[1]
    r = operator.post(f"/s/{one.project}/containers/{cid}/stop", headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == f"/s/{one.project}/containers"
    wait_for(
        lambda: "exited" in operator.get(f"/s/{one.project}/containers").get_data(as_text=True),
        timeout=20,
        message="container stopped",
    )
    assert operator.post(f"/s/{one.project}/containers/{'0' * 64}/start").status_code == 404
    # logs still come from the engine's labels
    assert "talker" in operator.get(f"/s/{one.project}/logs/").get_data(as_text=True)
    shutil.move(tmp_path / "moved-away", one.dir)


def test_root_folder_of_three_stacks_pasted_file_and_git_mirror(app_factory, stacks_root, tmp_path, busybox_image):
    root, three = stacks_root(3)
    (root / "notes").mkdir()  # a folder without a compose file is no stack
    app = app_factory(STACKPILOT_STACKS_DIR=str(root))
    admin = sign_in(app, app.test_client())
    html = _home(admin)
    for stack in three:
        assert "no containers" in _row(html, stack.project)
    assert 'id="stack-notes"' not in html
    registry = app.extensions["stackpilot.stacks"]
    assert admin.post(f"/stacks/{three[0].project}/forget").status_code == 303
    assert registry.get(three[0].project) is None
    assert f'id="stack-{three[0].project}"' in _home(admin)  # its folder is still in the root

    # a pasted compose file becomes a folder under the root
    name = f"{PREFIX}-pasted"
    bad = admin.post("/stacks/new", data={"name": name, "compose": "services: [\n"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "not valid YAML" in bad.get_data(as_text=True)
    assert not (root / name).exists()
    text = f"services:\n  web:\n    image: {busybox_image}\n"
    r = admin.post("/stacks/new", data={"name": name, "compose": text}, headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == f"/s/{name}/services"
    assert (root / name / "compose.yaml").read_text() == text
    assert 'id="r-web' in admin.get(f"/s/{name}/services").get_data(as_text=True)

    # a stack from a git repository (a local mirror), opened on its setup wizard
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "docker-compose.yml").write_text(f"services:\n  app:\n    image: {busybox_image}\n")
    (mirror / ".env.example").write_text("APP_SECRET=change-me\n")
    git = ["git", "-C", str(mirror), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(mirror)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "stack"], check=True)
    cloned = f"{PREFIX}-cloned"
    r = admin.post("/stacks/clone", data={"name": cloned, "url": f"file://{mirror}"}, headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == f"/s/{cloned}/setup/"
    assert (root / cloned / ".env.example").is_file() and (root / cloned / ".git").is_dir()
    assert cloned in _home(admin)
    audit = app.extensions["stackpilot.store"].select("SELECT action, stack FROM audit ORDER BY id")
    assert [tuple(r) for r in audit] == [
        ("stack.forget", three[0].project),
        ("stack.create", name),
        ("stack.clone", cloned),
    ]


def test_two_stacks_actions_and_per_stack_roles(app_factory, stacks_root):
    root, (a, b) = stacks_root(2)
    app = app_factory(STACKPILOT_STACKS_DIR=str(root))
    admin = sign_in(app, app.test_client())
    _home(admin)
    store = app.extensions["stackpilot.store"]
    for stack in (a, b):
        r = admin.post(f"/s/{stack.project}/stack/up")
        assert r.status_code == 200, r.get_data(as_text=True)[:300]
    for stack in (a, b):
        wait_for(
            lambda s=stack: "1 running" in _row(_home(admin), s.project), timeout=60, message=f"{stack.project} up"
        )
    rows = store.select("SELECT action, stack FROM audit WHERE action = 'stack.up' ORDER BY id")
    wait_for(lambda: len(store.select("SELECT 1 FROM audit WHERE action = 'stack.up'")) == 2, message="audit rows")
    rows = store.select("SELECT stack FROM audit WHERE action = 'stack.up' ORDER BY stack")
    assert sorted(r[0] for r in rows) == sorted([a.project, b.project])

    # a viewer limited to stack a: b's pages, fragments and actions are 404, a's are open
    viewer = sign_in(app, app.test_client(), "viewer", "kid")
    kid = store.user_by_name("kid")
    assert admin.post(f"/users/{kid.id}/stacks", data={"stack": [a.project]}).status_code == 200
    for path in ("/services", "/services/table", "/logs/", "/logs/talker", "/graph/", "/containers"):
        assert viewer.get(f"/s/{b.project}{path}").status_code == 404, path
        assert viewer.get(f"/s/{a.project}{path}").status_code in (200, 302), path
    assert viewer.get(f"/s/{b.project}/logs/-/download?s=talker").status_code == 404
    assert viewer.get(f"/s/{b.project}/live/services").status_code == 404  # the live push channel
    home = _home(viewer)
    assert f'id="stack-{a.project}"' in home and b.project not in home
    assert viewer.get("/s/no-such-stack/services").status_code == 404
    operator = sign_in(app, app.test_client(), "operator", "olga")
    olga = store.user_by_name("olga")
    admin.post(f"/users/{olga.id}/stacks", data={"stack": [a.project]})
    assert operator.post(f"/s/{b.project}/stack/down").status_code == 404
