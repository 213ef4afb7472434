"""Probes with the engine cut and restored (the suite's proxy socket), against a real server."""

from __future__ import annotations

import requests

from tests.support.live import wait_for


def test_probes_follow_the_engine(server_factory, engine_proxy):
    server = server_factory(DOCKER_HOST=engine_proxy.docker_host)
    assert requests.get(server.url + "/livez", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "reasons": []}
    assert requests.get(server.url + "/api/health", timeout=5).json()["status"] == "ok"

    engine_proxy.stop()
    down = wait_for(
        lambda: (r := requests.get(server.url + "/readyz", timeout=10)).status_code == 503 and [r],
        timeout=20,
        message="readyz 503",
    )[0]
    assert down.json()["status"] == "not ready" and down.json()["reasons"][0].startswith("engine unreachable")
    health = requests.get(server.url + "/api/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert requests.get(server.url + "/livez", timeout=5).status_code == 200  # alive all the same

    engine_proxy.start()
    wait_for(
        lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 200,
        timeout=20,
        message="readyz back to 200",
    )
    assert requests.get(server.url + "/api/health", timeout=5).json()["status"] == "ok"
