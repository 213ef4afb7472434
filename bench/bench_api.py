"""API cost (prints figures; asserts nothing).

    .venv/bin/python bench/bench_api.py [--services 50] [--rounds 40] [--seconds 5]

- GET /api/v1/stacks/-/status of a stack of N running busybox services through a real server with a
  bearer token, p50/p95, against the Docker SDK's own `containers.list(filters=project label)` in the
  same run (goal: < 2x; the SDK's list inspects every container, as our rows need), and against the
  sparse list (one /containers/json call) for scale;
- requests per second on /readyz (4 client threads, keep-alive), the probe a balancer polls.
Everything it creates is named h10bench-* and removed at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests
from _common import p95
from _common import row

import docker
from app import tokens
from app.settings import load_secret_key
from app.store import Store
from tests.support.images import ensure_busybox_image
from tests.support.live import LiveServer
from tests.support.live import ensure_user


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    image = ensure_busybox_image()
    project = f"h10bench-{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp()) / project
    root.mkdir()
    body = "".join(
        f'  s{i:03d}:\n    image: {image}\n    command: ["sleep", "3600"]\n    init: true\n'
        for i in range(args.services)
    )
    (root / "compose.yaml").write_text("services:\n" + body)
    compose = ["docker-compose", "--project-directory", str(root), "-p", project]
    data = Path(tempfile.mkdtemp())
    server = None
    try:
        subprocess.run([*compose, "up", "-d", "--quiet-pull"], check=True, capture_output=True, timeout=600)
        ensure_user(data, "admin", "admin")
        server = LiveServer(
            data_dir=data,
            env={
                "STACKPILOT_STACK_DIR": str(root),
                "STACKPILOT_API_RATE_LIMIT": "100000",
                "STACKPILOT_API_ADDRESS_LIMIT": "1000000",
            },
        ).start()
        store = Store(data / "stackpilot.sqlite3")
        plain, _ = tokens.create(store, load_secret_key(data), store.user_by_name("admin"), "bench", "viewer")
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {plain}"
        url = server.url + "/api/v1/stacks/-/status"
        for _ in range(3):
            assert len(s.get(url, timeout=60).json()["services"]) == args.services
        sdk = docker.from_env()
        api_t, sdk_t, sparse_t = [], [], []
        for _ in range(args.rounds):  # interleaved: the same load on both
            t = time.perf_counter()
            s.get(url, timeout=60).raise_for_status()
            api_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            sdk.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
            sdk_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            sdk.containers.list(all=True, sparse=True, filters={"label": f"com.docker.compose.project={project}"})
            sparse_t.append(time.perf_counter() - t)
        print(f"API status of {args.services} services vs the SDK's containers.list, {args.rounds} rounds")
        a50, a95 = statistics.median(api_t) * 1000, p95(api_t) * 1000
        s50, s95 = statistics.median(sdk_t) * 1000, p95(sdk_t) * 1000
        row("API /status p50 / p95", f"{a50:.1f} / {a95:.1f} ms")
        row("SDK containers.list p50 / p95", f"{s50:.1f} / {s95:.1f} ms")
        row("ratio p50", f"{a50 / s50:.2f}x", "goal < 2x", a50 / s50 < 2)
        # sparse: one /containers/json call, no inspection (no health output, no restart count)
        q50, q95 = statistics.median(sparse_t) * 1000, p95(sparse_t) * 1000
        row("SDK containers.list(sparse=True) p50 / p95", f"{q50:.1f} / {q95:.1f} ms")
        row("ratio p50 against sparse", f"{a50 / q50:.2f}x")

        count = [0]
        stop = time.monotonic() + args.seconds

        def hammer() -> None:
            c = requests.Session()
            while time.monotonic() < stop:
                c.get(server.url + "/readyz", timeout=10).raise_for_status()
                count[0] += 1

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        row("/readyz requests/s (4 threads)", f"{count[0] / args.seconds:.0f}")
    finally:
        if server is not None:
            server.stop()
        subprocess.run([*compose, "down", "-v", "-t", "0"], capture_output=True, timeout=300)


if __name__ == "__main__":
    main()
