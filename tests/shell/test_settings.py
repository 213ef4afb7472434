"""The admin's Shell settings (Users page): grant operators the shell, set the idle timeout; bad input
changes nothing; the timeout saved is the one the terminal closes after."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from simple_websocket import ConnectionError as HandshakeRefused

from app.store import Store
from tests.shell.conftest import Term

pytestmark = pytest.mark.docker
URL = "/settings/shell/"


def stored(server) -> tuple[dict | None, list[tuple[str, str]]]:
    store = Store(Path(server.data_dir) / "stackpilot.sqlite3")
    events = [(e.username, e.detail) for e in store.audit_events(50) if e.action == "shell.settings"]
    return store.get_setting("shell", None), events


def test_grant_operators_and_idle_timeout_through_the_form(shell_server, box):
    server = shell_server(box)
    admin, operator = server.session(), server.session("olga", "operator")
    with pytest.raises(HandshakeRefused) as refused:
        server.ws_connect("/shell/-/ws?s=box", operator)
    assert refused.value.status_code == 403
    assert operator.post(server.url + URL, data={"operators": "1", "idle_minutes": "5"}, timeout=10).status_code == 403
    assert 'data-action="shell"' not in operator.get(server.url + "/services", timeout=20).text

    users = admin.get(server.url + "/users", timeout=10)
    assert users.status_code == 200 and 'id="shell-settings"' in users.text
    assert 'name="idle_minutes" value="15"' in users.text and 'id="shell-operators" name="operators" value="1">' in (
        users.text
    )

    # bad input: a clear error, the form as typed, nothing stored or audited
    for bad in ("0", "1441", "ten", "", "5.5", "-3"):
        r = admin.post(server.url + URL, data={"operators": "1", "idle_minutes": bad}, timeout=10)
        assert r.status_code == 422, bad
        assert "whole number of minutes from 1 to 1440" in r.text and "Nothing was changed" in r.text
        assert 'id="shell-settings"' in r.text and "checked" in r.text  # what was typed stays
    no_token = requests.post(
        server.url + URL, data={"operators": "1", "idle_minutes": "5"}, cookies=admin.cookies, timeout=10
    )
    assert no_token.status_code in (400, 403)
    assert stored(server) == (None, [])

    r = admin.post(server.url + URL, data={"operators": "1", "idle_minutes": "7"}, timeout=10)
    assert r.status_code == 200 and "Saved" in r.text and 'value="7"' in r.text
    setting, events = stored(server)
    assert setting == {"operators": True, "idle_seconds": 420}
    assert events == [("admin", "operators granted; idle timeout 15 -> 7 min")]

    # the operator now gets a working shell, and the terminal closes after the saved timeout
    term = Term(server.ws_connect("/shell/-/ws?s=box", operator))
    try:
        term.until(lambda t: "hello" in t.kinds(), message="operator hello")
        assert term.messages[0]["idle"] == 420
        term.type("echo granted-$((40+2))\r")
        term.until(lambda t: b"granted-42" in t.out, message="operator's echo")
    finally:
        term.close()
    page = operator.get(server.url + "/shell/box", timeout=10)
    assert page.status_code == 200 and "7 min" in page.text
    services = operator.get(server.url + "/services", timeout=20).text
    assert 'data-action="shell"' in services and 'data-action="backup"' not in services  # backups stay admin's

    # taking it back: operators are refused again, the timeout is kept
    r = admin.post(server.url + URL, data={"idle_minutes": "7"}, timeout=10)
    assert r.status_code == 200
    assert stored(server)[0] == {"operators": False, "idle_seconds": 420}
    with pytest.raises(HandshakeRefused) as refused:
        server.ws_connect("/shell/-/ws?s=box", operator)
    assert refused.value.status_code == 403
