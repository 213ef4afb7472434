"""One-off commands through Compose (exec in the running container, run --rm in a new one), their
output and exit code in the run panel, and the recent ones offered again."""

from __future__ import annotations

import html
import re

import pytest

from tests.support.live import wait_for

pytestmark = pytest.mark.docker
RUN_ID = re.compile(r'data-run="([^"]+)"')


def run(server, session, service: str, **form) -> str:
    """Post the command, follow the run panel until the run is done; all of its text."""
    r = session.post(f"{server.url}/shell/{service}/run", data=form, timeout=30)
    assert r.status_code == 200, r.text[:500]
    run_id = RUN_ID.search(r.text).group(1)
    text = [r.text]

    def finished():
        lines = session.get(f"{server.url}/stack/runs/{run_id}", params={"after": 0}, timeout=10)
        text.append(lines.text)
        return lines.status_code == 286

    wait_for(finished, timeout=30, interval=0.2, message="run finished")
    panel = session.get(f"{server.url}/stack/runs/{run_id}/panel", timeout=10).text
    return html.unescape("\n".join([*text, panel]))


def test_exec_run_and_recent(shell_server, box):
    server = shell_server(box)
    admin = server.session()
    # an argument list: no shell expands the $ or the ;
    out = run(server, admin, "box", command="echo 'a b' $HOME;x", mode="exec")
    assert "a b $HOME;x" in out and "exit code 0" in out
    # sh -c when asked: the exit code is the command's
    out = run(server, admin, "box", command="echo from-sh; exit 7", shell="1", mode="exec")
    assert "from-sh" in out and "exit code 7" in out
    # a one-off container of a service that is not running
    out = run(server, admin, "idle", command="echo one-off-$((2+2))", shell="1", mode="run")
    assert "one-off-4" in out and "exit code 0" in out
    page = admin.get(server.url + "/shell/box", timeout=10).text
    assert page.index("echo from-sh; exit 7") < page.index("echo &#39;a b&#39; $HOME;x")
    # unbalanced quotes and empty commands are said, nothing runs
    r = admin.post(server.url + "/shell/box/run", data={"command": "echo 'oops"}, timeout=10)
    assert r.status_code == 422 and "unbalanced" in r.text
    r = admin.post(server.url + "/shell/box/run", data={"command": "  "}, timeout=10)
    assert r.status_code == 422
    # operators without the grant may not
    operator = server.session("olga", "operator")
    r = operator.post(server.url + "/shell/box/run", data={"command": "id"}, timeout=10)
    assert r.status_code == 403
