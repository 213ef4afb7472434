"""Image benchmark: our layers over the base, container start to healthy, idle memory.

Baselines from the same run: the base image's own size, and a bare `python3 -c` container
started the same way (how much of "start" is the engine, not us).
Run: python3 bench/bench_image.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import requests
from _common import ROOT
from _common import row

sys.path.insert(0, str(ROOT))
from tests.packaging.image import build_image  # noqa: E402
from tests.packaging.image import docker_socket_gid  # noqa: E402
from tests.packaging.image import layers_over_base  # noqa: E402
from tests.support.images import ensure_python_base_image  # noqa: E402
from tests.support.live import free_port  # noqa: E402

NAME = f"spbench{uuid.uuid4().hex[:6]}"
# A network of our own: engines without the default bridge (docker0) refuse `docker run -p` on it.
NET = f"{NAME}-net"
RUNS = 3


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.strip()


def health_status(name: str) -> str:
    state = json.loads(docker("inspect", name))[0]["State"]
    return state.get("Health", {}).get("Status", state["Status"])


def start_to_healthy(image: str, interval: str | None = None) -> tuple[float, float]:
    """Seconds from `docker run` to the first 200 from /api/health, and to Docker's "healthy"."""
    port = free_port()
    name = f"{NAME}-{uuid.uuid4().hex[:4]}"
    started = time.perf_counter()
    docker(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:9000",
        "--group-add",
        str(docker_socket_gid()),
        "--network",
        NET,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        *(["--health-interval", interval] if interval else []),
        image,
    )
    try:
        answered = None
        while time.perf_counter() - started < 60:
            if answered is None:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=0.5).status_code == 200:
                        answered = time.perf_counter() - started
                except requests.RequestException:
                    pass
            if health_status(name) == "healthy":
                return answered or float("nan"), time.perf_counter() - started
            time.sleep(0.05)
        raise RuntimeError("the container did not turn healthy within 60 s")
    finally:
        docker("rm", "-f", "-v", name, check=False)


def bare_python_start(base: str) -> float:
    name = f"{NAME}-bare"
    started = time.perf_counter()
    docker("run", "--name", name, "--network", NET, base, "python3", "-c", "pass")
    took = time.perf_counter() - started
    docker("rm", "-f", name, check=False)
    return took


def idle_memory_mb(image: str) -> tuple[float, float]:
    """Container memory (cgroup usage, as `docker stats` shows it) and the server's RSS, idle."""
    name = f"{NAME}-idle"
    port = free_port()
    docker(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:9000",
        "--group-add",
        str(docker_socket_gid()),
        "--network",
        NET,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        image,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/health", timeout=0.5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        for path in ("/login", "/api/health", "/static/app.css"):  # warm: templates, engine client
            requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        time.sleep(3)
        stats = json.loads(docker("stats", "--no-stream", "--format", "{{json .}}", name))
        usage = stats["MemUsage"].split("/")[0].strip()
        value, unit = float(usage[:-3]), usage[-3:]
        mb = value * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
        status = docker("exec", name, "cat", "/proc/1/status")
        rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")) / 1024
        return mb, rss
    finally:
        docker("rm", "-f", "-v", name, check=False)


def main() -> None:
    base = ensure_python_base_image()
    t0 = time.perf_counter()
    image = build_image(base)
    build_s = time.perf_counter() - t0
    ours = layers_over_base(image, base) / 1e6
    base_mb = int(docker("image", "inspect", "-f", "{{.Size}}", base)) / 1e6
    compose_mb = (
        int(
            docker(
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "stat",
                image,
                "-c",
                "%s",
                "/opt/venv/bin/docker-compose",
            )
        )
        / 1e6
    )

    print(f"Stackpilot image benchmark ({image}, base {base})")
    row("build (cached when the context is unchanged)", f"{build_s:.1f} s")
    row("base image (baseline)", f"{base_mb:.1f} MB")
    row("our layers over the base", f"{ours:.1f} MB", "target < 80 MB", ours < 80)
    row("  of which the Compose binary (stripped)", f"{compose_mb:.1f} MB")
    row("  of which everything else", f"{ours - compose_mb:.1f} MB")

    bare = min(bare_python_start(base) for _ in range(RUNS))
    row("bare `python3 -c pass` container (baseline)", f"{bare:.2f} s")
    fast = [start_to_healthy(image) for _ in range(RUNS)]
    ready = min(a for a, _ in fast)
    healthy = min(h for _, h in fast)
    row("start -> /api/health answers (best of 3)", f"{ready:.2f} s", f"{ready / bare:.1f}x baseline")
    row("start -> Docker 'healthy', the image's 2 s probe (best of 3)", f"{healthy:.2f} s", "target < 3 s", healthy < 3)

    mem, rss = idle_memory_mb(image)
    row("idle container memory (docker stats)", f"{mem:.1f} MB", "target < 80 MB", mem < 80)
    row("  server process RSS", f"{rss:.1f} MB")

    # WITH_GIT=1: the git layer alone (apt's lists, caches and .debs must not stay in it).
    t0 = time.perf_counter()
    with_git = build_image(base, with_git=True)
    git_build_s = time.perf_counter() - t0
    git_total = layers_over_base(with_git, base) / 1e6
    git_layer = git_total - ours
    row("WITH_GIT=1 build (cached when the context is unchanged)", f"{git_build_s:.1f} s")
    row("WITH_GIT=1: our layers over the base", f"{git_total:.1f} MB")
    row(
        "  of which the git layer",
        f"{git_layer:.1f} MB",
        "target < 90 MB (was 196 MB with apt's cache)",
        git_layer < 90,
    )
    leftovers = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        with_git,
        "-c",
        "ls /var/lib/apt/lists /var/cache/apt/archives 2>/dev/null | grep -c -v -e : -e '^$' "
        "-e '^partial$' -e '^lock$' -e '^auxfiles$' || true",
    )
    row("  apt lists and .debs left in the image", leftovers or "0", "target 0", (leftovers or "0") == "0")


if __name__ == "__main__":
    docker("network", "create", NET)
    try:
        main()
    finally:
        docker("network", "rm", NET, check=False)
