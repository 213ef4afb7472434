"""The image, built for real and run from the repo's docker-compose.yml beside a real stack."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from tests.packaging.image import docker_socket_gid
from tests.support.live import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STACK = {
    "docker-compose.yml": """
services:
  web:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo ready > /data/marker; exec sleep 3600"]
    volumes:
      - ./data:/data
  worker:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
""",
}


def test_image_carries_labels_user_healthcheck_and_stop_signal(stackpilot_image):
    import json

    out = subprocess.run(["docker", "image", "inspect", stackpilot_image], capture_output=True, text=True, check=True)
    config = json.loads(out.stdout)[0]["Config"]
    assert config["User"] not in ("", "0", "root") and not config["User"].startswith("0:")
    assert config["Labels"]["org.opencontainers.image.title"] == "Stackpilot"
    assert config["Labels"]["org.opencontainers.image.version"]
    assert "python3" in " ".join(config["Healthcheck"]["Test"])
    assert config["StopSignal"] == "SIGTERM"
    assert "9000/tcp" in config["ExposedPorts"]


def test_sidecar_turns_healthy_as_non_root_with_the_engine_reachable(open_stack, sidecar_factory):
    stack = open_stack(STACK)
    sidecar = sidecar_factory(stack.dir)
    sidecar.wait_healthy()

    health = sidecar.health()
    assert health["status"] == "ok"
    assert health["docker"] == "reachable", health

    # The serving process itself (not an exec'd one) runs under a non-root uid.
    top = subprocess.run(
        ["docker", "top", sidecar.container_id()], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    server = [line.split() for line in top[1:] if "-m app" in line]
    assert server, top
    assert all(cols[0] not in ("0", "root") for cols in server), top
    status = sidecar.exec("cat", "/proc/1/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert "0" not in uids, status

    # Port 9000 is published on loopback only by default.
    ports = sidecar.inspect()["HostConfig"]["PortBindings"]["9000/tcp"]
    assert [p["HostIp"] for p in ports] == ["127.0.0.1"]


def test_compose_inside_the_container_manages_the_stack_with_host_paths(open_stack, sidecar_factory):
    """Compose run in the container (as the non-root user, read-only root filesystem) starts and
    stops the stack's services; the relative bind mount resolves to the host's folder."""
    stack = open_stack(STACK)
    sidecar = sidecar_factory(stack.dir)
    sidecar.wait_healthy()

    def compose_inside(*args: str) -> subprocess.CompletedProcess:
        return sidecar.exec("docker-compose", "--project-directory", str(stack.dir), "-p", stack.project, *args)

    up = compose_inside("up", "-d", "--pull", "never")
    assert up.returncode == 0, up.stderr
    web = stack.compose("ps", "-q", "web").stdout.strip()
    assert web
    mounts = subprocess.run(
        ["docker", "inspect", "-f", "{{json .Mounts}}", web], capture_output=True, text=True, check=True
    ).stdout
    assert f'"Source":"{stack.dir}/data"' in mounts
    wait_for(
        lambda: (stack.dir / "data" / "marker").exists(),
        timeout=20,
        message="the service to write through its bind mount into the host folder",
    )

    stop = compose_inside("stop", "-t", "1", "worker")
    assert stop.returncode == 0, stop.stderr
    state = stack.compose("ps", "-a", "--format", "{{.Service}} {{.State}}").stdout
    assert "worker exited" in state, state
    start = compose_inside("start", "worker")
    assert start.returncode == 0, start.stderr
    assert "worker running" in stack.compose("ps", "--format", "{{.Service}} {{.State}}").stdout


def test_compose_in_the_image_reports_failures(open_stack, sidecar_factory):
    """The image runs the real Compose binary: a failing command exits non-zero (the PyPI
    wrapper script would exit 0 and hide it)."""
    stack = open_stack(STACK)
    sidecar = sidecar_factory(stack.dir)
    sidecar.wait_healthy()
    bad = sidecar.exec("docker-compose", "-f", "/nonexistent/compose.yml", "config")
    assert bad.returncode != 0
    assert "nonexistent" in bad.stderr


def test_without_the_socket_group_health_names_the_permission_problem(open_stack, sidecar_factory):
    stack = open_stack(STACK)
    # group_add the container user's own group instead of the socket's: the socket is refused.
    sidecar = sidecar_factory(stack.dir, DOCKER_GID="10001")
    assert docker_socket_gid() != 10001
    sidecar.wait_healthy()
    health = sidecar.health()
    assert health["docker"].startswith("unreachable"), health
    assert "permission denied" in health["docker"].lower()


def test_sigterm_stops_the_container_promptly(open_stack, sidecar_factory):
    stack = open_stack(STACK)
    sidecar = sidecar_factory(stack.dir)
    sidecar.wait_healthy()
    started = time.monotonic()
    sidecar.compose("stop", "-t", "20")
    took = time.monotonic() - started
    state = sidecar.inspect()["State"]
    assert state["ExitCode"] == 0, state
    assert took < 10, f"stop took {took:.1f}s: the server did not exit on SIGTERM"
    with pytest.raises(requests.RequestException):
        requests.get(sidecar.url + "/api/health", timeout=2)


def sign_in_to(sidecar) -> requests.Session:
    """An admin made in the container's own /data (hash made on the host), signed in through
    the real login form."""
    import re

    from tests.support.live import TEST_PASSWORD
    from tests.support.live import password_hash

    made = sidecar.exec(
        "python3",
        "-c",
        "import sys; from app.store import Store; s = Store(sys.argv[1]); "
        "s.user_by_name('admin') or s.add_user('admin', sys.argv[2], 'admin')",
        "/data/stackpilot.sqlite3",
        password_hash(),
    )
    assert made.returncode == 0, made.stderr
    csrf = re.compile(r'name="csrf-token" content="([^"]+)"')
    s = requests.Session()
    s.trust_env = False
    page = s.get(sidecar.url + "/login", timeout=10)
    r = s.post(
        sidecar.url + "/login",
        data={"username": "admin", "password": TEST_PASSWORD, "csrf_token": csrf.search(page.text).group(1)},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code in (302, 303), r.text[:300]
    s.headers.update(
        {"X-CSRF-Token": csrf.search(s.get(sidecar.url + "/", timeout=10).text).group(1), "Origin": sidecar.url}
    )
    return s


def test_ui_lists_services_and_stops_and_starts_one_from_inside_the_container(open_stack, sidecar_factory):
    stack = open_stack(STACK)
    stack.compose("up", "-d", "--pull", "never")
    sidecar = sidecar_factory(stack.dir)
    sidecar.wait_healthy()
    s = sign_in_to(sidecar)

    page = s.get(sidecar.url + "/services", timeout=30)
    assert page.status_code == 200, page.text[:500]
    assert "web" in page.text and "worker" in page.text

    def state(service: str) -> str:
        rows = stack.compose("ps", "-a", "--format", "{{.Service}} {{.State}}").stdout.splitlines()
        return dict(r.split(" ", 1) for r in rows if " " in r).get(service, "")

    stop = s.post(sidecar.url + "/services/worker/stop", timeout=30)
    assert stop.status_code == 200, stop.text[:500]
    wait_for(
        lambda: state("worker") == "exited",
        timeout=30,
        interval=0.3,
        message=f"worker to stop ({run_output(s, sidecar, stop.text)})",
    )
    start = s.post(sidecar.url + "/services/worker/start", timeout=30)
    assert start.status_code == 200, start.text[:500]
    wait_for(lambda: state("worker") == "running", timeout=30, interval=0.3, message="worker to start")

    # Recreating the service with the bind mount, from inside, keeps the host path.
    stack.dir.joinpath("data", "marker").unlink(missing_ok=True)
    s.post(sidecar.url + "/services/web/recreate", timeout=30).raise_for_status()
    wait_for(
        lambda: (stack.dir / "data" / "marker").exists(),
        timeout=30,
        interval=0.3,
        message="the recreated service to write into the host's ./data",
    )


def run_output(s: requests.Session, sidecar, panel: str) -> str:
    """The Compose run's output as the progress panel shows it (for failure messages)."""
    import re

    found = re.search(r"/stack/runs/([\w-]+)", panel)
    if not found:
        return panel[:800]
    return s.get(sidecar.url + f"/stack/runs/{found.group(1)}?after=0", timeout=10).text[:1500]
