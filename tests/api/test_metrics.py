"""/metrics: off without a token or the setting; with a token, Prometheus text format."""

from __future__ import annotations

import re

import requests

LINE = re.compile(r'^[a-z_:][a-z0-9_:]*(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf-]+$')


def test_metrics_need_a_token_and_speak_prometheus(api_server):
    assert requests.get(api_server.url + "/metrics", timeout=10).status_code == 404
    assert (
        requests.get(api_server.url + "/metrics", headers={"Authorization": "Bearer spt_nope"}, timeout=10).status_code
        == 404
    )
    s = api_server.client("viewer")
    s.get(api_server.api("/status"), timeout=10)  # one API request to time
    r = s.get(api_server.url + "/metrics", timeout=20)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = r.text.splitlines()
    for line in lines:
        assert line.startswith("# ") or LINE.match(line), line
    text = r.text
    assert f'stackpilot_container_state{{stack="{api_server.stack.project}",service="db"' in text
    assert 'stackpilot_engine_up{stack="' in text
    assert "# TYPE stackpilot_compose_runs_total counter" in text
    assert 'stackpilot_open_streams{kind="logs"}' in text
    assert 'route="/api/v1/stacks/<stack>/status",le="+Inf"} ' in text
