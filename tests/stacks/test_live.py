"""Two stacks in one real server: actions and live logs on each over the real WebSocket, and a
viewer limited to one stack refused (404) on the other's pages and log socket."""

from __future__ import annotations

import pytest
from simple_websocket import ConnectionError as WSConnectionError

from app.store import Store
from tests.logs.conftest import Reader
from tests.support.live import wait_for

pytestmark = pytest.mark.docker


def test_two_stacks_actions_and_logs_and_a_limited_viewer(server_factory, stacks_root):
    root, (a, b) = stacks_root(2)
    server = server_factory(STACKPILOT_STACKS_DIR=str(root))
    admin = server.session()
    home = admin.get(server.url + "/", timeout=30).text
    assert f'id="stack-{a.project}"' in home and f'id="stack-{b.project}"' in home
    for stack in (a, b):
        r = admin.post(f"{server.url}/s/{stack.project}/stack/up", timeout=30)
        assert r.status_code == 200, r.text[:300]
    for stack in (a, b):
        wait_for(
            lambda s=stack: (
                "1 running"
                in admin.get(server.url + "/", timeout=30).text.split(f'id="stack-{s.project}"')[1].split("</tr>")[0]
            ),
            timeout=60,
            message=f"{stack.project} running",
        )

    for stack in (a, b):  # each stack's socket streams that stack's own container
        reader = Reader(server.ws_connect(f"/s/{stack.project}/logs/-/ws?s=talker&tail=5", admin))
        try:
            reader.until(lambda r: len(r.lines) >= 2, timeout=20, message="log lines")
            assert all("talker-says-hi" in line[4] for line in reader.lines)
        finally:
            reader.close()

    viewer = server.session("kid", "viewer")
    users = admin.get(server.url + "/users", timeout=10).text
    assert f'value="{a.project}"' in users  # the users page offers the stack limits
    kid_id = Store(server.data_dir / "stackpilot.sqlite3").user_by_name("kid").id
    assert admin.post(f"{server.url}/users/{kid_id}/stacks", data={"stack": a.project}, timeout=10).ok
    assert viewer.get(f"{server.url}/s/{b.project}/services", timeout=10).status_code == 404
    assert viewer.get(f"{server.url}/s/{a.project}/services", timeout=10).status_code == 200
    with pytest.raises(WSConnectionError) as refused:
        server.ws_connect(f"/s/{b.project}/logs/-/ws?s=talker", viewer)
    assert refused.value.status_code == 404
    reader = Reader(server.ws_connect(f"/s/{a.project}/logs/-/ws?s=talker&tail=2", viewer))
    try:
        reader.until(lambda r: len(r.lines) >= 1, timeout=20, message="the allowed stack's lines")
    finally:
        reader.close()
