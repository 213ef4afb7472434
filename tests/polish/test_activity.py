"""The Activity page on the real engine and Compose: an action made through the UI is listed with
its user and result (and its output linked); a viewer limited to one stack sees none of another's."""

from __future__ import annotations

import re

import pytest

from tests.conftest import sign_in
from tests.support.live import wait_for

pytestmark = pytest.mark.docker


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr id="audit-\d+" class="audit-row">(.*?)</tr>', html, re.S)


def test_activity_lists_ui_actions_and_hides_other_stacks(app_factory, stacks_root):
    root, (a, b) = stacks_root(2)
    app = app_factory(STACKPILOT_STACKS_DIR=str(root))
    store = app.extensions["stackpilot.store"]
    admin = sign_in(app, app.test_client(), "admin", "ada")
    assert admin.get("/").status_code == 200  # the home page registers the stacks it finds
    r = admin.post(f"/s/{a.project}/stack/up")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    wait_for(
        lambda: store.select("SELECT 1 FROM audit WHERE action = 'stack.up' AND result = 'ok'"),
        timeout=60,
        message="the Up finished and was recorded",
    )
    store.audit("ada", "stack.down", b.project, "failed (exit 1)", stack=b.project)
    store.audit("ada", "user.add", "someone")  # an account event: admins only

    html = admin.get("/activity/").get_data(as_text=True)
    rows = _rows(html)
    assert len(rows) >= 3
    newest_first = [r for r in rows if "stack.up" in r or "stack.down" in r]
    assert "stack.down" in newest_first[0] and "stack.up" in newest_first[1]
    up = newest_first[1]
    assert ">ada<" in up and "result-ok" in up and f">{a.project}<" in up
    assert "Show the output" in up  # the run is still in memory: its panel is linked
    link = re.search(r'href="([^"]+/panel)"', up).group(1)
    assert admin.get(link).status_code == 200

    # filters: by stack, result, user, action, service; paging keeps the filters
    only_b = _rows(admin.get(f"/activity/?stack={b.project}").get_data(as_text=True))
    assert len(only_b) == 1 and "stack.down" in only_b[0]
    failed = _rows(admin.get("/activity/?result=failed").get_data(as_text=True))
    assert len(failed) == 1 and b.project in failed[0]
    assert not _rows(admin.get("/activity/?user=nobody").get_data(as_text=True))
    assert len(_rows(admin.get("/activity/?action=user").get_data(as_text=True))) == 1
    assert len(_rows(admin.get(f"/activity/?service={a.project}").get_data(as_text=True))) == 1
    for i in range(60):
        store.audit("ada", "stack.restart", a.project, "ok", f"seeded {i}", stack=a.project)
    first = admin.get(f"/activity/?stack={a.project}").get_data(as_text=True)
    assert len(_rows(first)) == 50 and 'rel="next"' in first and "seeded 59" in first
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = admin.get(older).get_data(as_text=True)
    assert "page=2" in older and f"stack={a.project}" in older
    assert "seeded 0" in second and 'rel="prev"' in second and "seeded 59" not in second

    # a viewer limited to stack a: nothing of b, no account events of others, no output links
    sign_in(app, app.test_client(), "viewer", "kid")
    viewer = sign_in(app, app.test_client(), "viewer", "kid")
    kid = store.user_by_name("kid")
    assert admin.post(f"/users/{kid.id}/stacks", data={"stack": [a.project]}).status_code == 200
    seen = viewer.get("/activity/?page=1").get_data(as_text=True)
    seen_all = seen + viewer.get("/activity/?page=2").get_data(as_text=True)
    assert b.project not in seen_all and "user.add" not in seen_all
    assert "Show the output" not in seen
    assert not _rows(viewer.get(f"/activity/?stack={b.project}").get_data(as_text=True))
    assert 'href="/activity/"' in seen  # linked from the navigation
