import pytest

from tests.support.live import wait_for


@pytest.mark.docker
def test_health_reports_reachable_engine(client, docker_engine):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok" and body["docker"] == "reachable" and body["version"]


def test_health_stays_up_when_socket_is_dead(app_factory, dead_docker_host):
    client = app_factory(docker_host=dead_docker_host).test_client()
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.get_json()["docker"] == "unreachable: no Docker socket at that path"


@pytest.mark.docker
def test_health_follows_the_engine_going_away_and_coming_back(app_factory, engine_proxy):
    client = app_factory(docker_host=engine_proxy.docker_host).test_client()
    assert client.get("/api/health").get_json()["docker"] == "reachable"
    engine_proxy.stop()
    body = wait_for(lambda: client.get("/api/health").get_json(), message="health")
    assert body["docker"].startswith("unreachable: ")
    assert "refused" in body["docker"] or "socket" in body["docker"]
    engine_proxy.start()
    wait_for(lambda: client.get("/api/health").get_json()["docker"] == "reachable", message="engine reachable again")


def test_live_server_serves_health_and_home(server):
    import requests

    assert requests.get(server.url + "/api/health", timeout=5).json()["status"] == "ok"
    r = requests.get(server.url + "/", timeout=5)
    assert r.status_code == 200 and "<html" in r.text
