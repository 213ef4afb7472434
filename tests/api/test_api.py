"""The /api/v1 endpoints against a real server, engine and Compose stack (issue 16)."""

from __future__ import annotations

import requests

from tests.support.live import wait_for

PROBLEM = "application/problem+json"


def _run_done(s: requests.Session, url: str, timeout: float = 60) -> dict:
    return wait_for(
        lambda: (r := s.get(url, timeout=10).json()) and r["status"] != "running" and r,
        timeout=timeout,
        interval=0.2,
        message=f"run {url}",
    )


def test_seed_scenario(api_server):
    """A script with a token lists containers, restarts one, starts the core group, reads the last 50
    log lines and the stack status, and gets 429 past its limit."""
    s = api_server.client("operator")
    stacks = s.get(api_server.url + "/api/v1/stacks", timeout=10).json()["stacks"]
    assert [st["name"] for st in stacks]  # the default stack is listed
    status = s.get(api_server.api("/status"), timeout=10).json()
    rows = {r["name"]: r for r in status["services"]}
    assert set(rows) == {"db", "api", "web"} and rows["db"]["state"] in ("running", "healthy", "starting")
    assert rows["db"]["containers"] and rows["api"]["state"] == "not-created"

    r = s.post(api_server.api("/services/db/restart"), json={"timeout": 2, "wait": 60}, timeout=70)
    assert r.status_code == 200, r.text
    assert r.json()["run"]["status"] == "succeeded" and r.json()["run"]["exit_code"] == 0

    r = s.post(api_server.api("/groups/core/start"), timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["order"] == ["api", "web"]  # dependencies first
    run = _run_done(s, api_server.url + r.headers["Location"])
    assert run["status"] == "succeeded", run
    same = s.get(f"{api_server.url}/api/v1/runs/{run['id']}", params={"offset": 1}, timeout=10).json()
    assert same["id"] == run["id"] and same["lines"] == run["lines"][1:] and same["offset"] == 1
    limited = api_server.token("operator", username="elsewhere")
    user = api_server.store.user_by_name("elsewhere")
    with api_server.store.transaction() as conn:
        conn.execute("INSERT INTO user_stacks (user_id, stack) VALUES (?, 'another')", (user.id,))
    assert (
        requests.get(
            f"{api_server.url}/api/v1/runs/{run['id']}", headers={"Authorization": f"Bearer {limited}"}, timeout=10
        ).status_code
        == 404
    )  # another stack's run is not theirs to read

    def fifty():
        text = s.get(api_server.api("/services/api/logs"), params={"tail": 50}, timeout=10).text
        return text if text.count("\n") == 50 and "api line 119" in text else None

    text = wait_for(fifty, timeout=20, interval=0.3, message="50 log lines")
    assert text.splitlines()[0] == "api line 70"
    status = s.get(api_server.api("/status"), timeout=10).json()
    assert {r["name"]: r["state"] for r in status["services"]}["web"] == "running"

    codes = [s.get(api_server.api("/groups"), timeout=10).status_code for _ in range(40)]
    assert 429 in codes
    refused = s.get(api_server.url + "/api/v1/stacks", timeout=10)
    assert refused.status_code == 429 and refused.headers["Content-Type"] == PROBLEM
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # the audit names the token
    rows = api_server.store.select("SELECT username, action, result FROM audit WHERE action LIKE 'service.%'")
    assert any("(token " in row["username"] and row["action"] == "service.restart" for row in rows)


def test_logs_stream_as_ndjson(api_server):
    """follow=1 streams one container's log as JSON lines while the connection stays open."""
    s = api_server.client("viewer")
    api_server.stack.compose("up", "-d", "--no-deps", "api")
    wait_for(
        lambda: "api line 119" in s.get(api_server.api("/services/api/logs"), params={"tail": 1}, timeout=10).text,
        timeout=20,
        message="api's lines",
    )
    with s.get(
        api_server.api("/services/api/logs"),
        params={"follow": 1, "tail": 3, "format": "json", "max_seconds": 5},
        stream=True,
        timeout=10,
    ) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
        got = []
        for line in r.iter_lines():
            got.append(__import__("json").loads(line))
            if len(got) == 3:
                break
    assert [g["message"] for g in got] == ["api line 117", "api line 118", "api line 119"]
    assert got[0]["stream"] == "stdout" and got[0]["time"].endswith("Z")
    # a quiet stream ends after max_seconds and gives its share back (2 per user on this server)
    for _ in range(3):
        r = s.get(api_server.api("/services/api/logs"), params={"follow": 1, "tail": 1, "max_seconds": 1}, timeout=10)
        assert r.status_code == 200 and r.text == "api line 119\n"
