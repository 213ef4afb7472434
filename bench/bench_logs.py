"""Benchmarks of the live logs, against the real engine and the real waitress server.

    python3 bench/bench_logs.py [--window 5]

Prints:
  - throughput: lines/s a WebSocket viewer receives from a container writing as fast as it can,
    against `docker logs -f` read with the Docker SDK directly, in the same run (target >= 0.8);
  - latency: engine timestamp of a line -> arrival at the WebSocket client (target p95 < 250 ms);
  - /api/health p50/p95 with 40 log viewers open on a steady stream (target p95 < 200 ms),
    next to the same figure with no viewer.
Everything it creates is named spbench-* and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

import docker  # noqa: E402
from app.logstream.lines import parse_stamp  # noqa: E402
from app.store import Store  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402
from tests.support.live import ensure_user  # noqa: E402

log = logging.getLogger("bench_logs")

COMPOSE = """
services:
  flood:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "i=0; while :; do i=$$((i+1)); echo \\"flood line $$i with some padding text to look like a log\\"; done"]
    stop_grace_period: 1s
  steady:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "i=0; while :; do i=$$((i+1)); echo \\"steady $$i\\"; sleep 0.02; done"]
    stop_grace_period: 1s
"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def compose(directory: Path, project: str, *args: str) -> None:
    subprocess.run(["docker-compose", "--project-directory", str(directory), "-p", project, *args],
                   check=True, capture_output=True, timeout=180)


def container_id(client, project: str, service: str) -> str:
    found = client.containers.list(filters={"label": [f"com.docker.compose.project={project}",
                                                      f"com.docker.compose.service={service}"]})
    return found[0].id


def sdk_rate(client, cid: str, window: float) -> float:
    """Lines/s read by the Docker SDK from `logs -f` (the `docker logs -f` baseline)."""
    container = client.containers.get(cid)
    stream = container.logs(stream=True, follow=True, tail=0)  # docker logs -f --tail 0
    count = 0
    start = time.monotonic()
    end = start + window
    for chunk in stream:
        count += chunk.count(b"\n")
        if time.monotonic() >= end:
            break
    elapsed = time.monotonic() - start
    stream.close()
    return count / elapsed


def ws_rate(server: LiveServer, session, service: str, window: float) -> tuple[float, int]:
    """Lines/s delivered to a WebSocket viewer (history excluded), and lines it was told were skipped."""
    ws = server.ws_connect(f"/logs/-/ws?s={service}&tail=1", session)
    count = skipped = 0
    try:
        ws.receive(timeout=10)  # hello
        ws.receive(timeout=10)  # the tail line
        start = time.monotonic()
        end = start + window
        while time.monotonic() < end:
            raw = ws.receive(timeout=1)
            if raw is None:
                continue
            for item in json.loads(raw).get("items", []):
                if isinstance(item, list):
                    count += 1
                elif item.get("t") == "skip":
                    skipped += item["n"]
        elapsed = time.monotonic() - start
    finally:
        ws.close()
    return count / elapsed, skipped


def latencies(server: LiveServer, session, window: float) -> list[float]:
    ws = server.ws_connect("/logs/-/ws?s=steady&tail=1", session)
    out = []
    try:
        end = time.monotonic() + window
        while time.monotonic() < end:
            raw = ws.receive(timeout=1)
            now = time.time_ns()
            if raw is None:
                continue
            for item in json.loads(raw).get("items", []):
                if isinstance(item, list):
                    out.append((now - parse_stamp(item[1].encode())) / 1e6)
    finally:
        ws.close()
    return out[1:]  # the first is the tail line, written before we connected


def health_times(server: LiveServer, n: int) -> list[float]:
    times = []
    with requests.Session() as s:
        for _ in range(n):
            t = time.perf_counter()
            s.get(server.url + "/api/health", timeout=10).raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(0.02)
    return times


def viewers(server: LiveServer, session, n: int, seconds: float) -> tuple[list[float], list[int]]:
    """n viewers on the steady stream, each reading in its own thread, while health is timed."""
    sockets = [server.ws_connect("/logs/-/ws?s=steady&tail=10", session) for _ in range(n)]
    counts = [0] * n
    stop = threading.Event()

    def read(i: int, ws) -> None:
        while not stop.is_set():
            try:
                raw = ws.receive(timeout=0.5)
            except Exception:  # noqa: BLE001 - a closed socket ends the reader
                return
            if raw:
                counts[i] += sum(1 for item in json.loads(raw).get("items", []) if isinstance(item, list))

    threads = [threading.Thread(target=read, args=(i, ws), daemon=True) for i, ws in enumerate(sockets)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let every viewer get its history and go live
    times = health_times(server, int(seconds / 0.03))
    stop.set()
    for ws in sockets:
        ws.close()
    for t in threads:
        t.join(2)
    return times, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=5.0, help="seconds per throughput window")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    image = images.ensure_busybox_image()
    client = docker.from_env(timeout=60)
    project = f"spbench-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="spbench-"))
    stack = work / "stack"
    stack.mkdir()
    (stack / "docker-compose.yml").write_text(COMPOSE.format(image=image))
    server = None
    try:
        compose(stack, project, "up", "-d")
        data = work / "data"
        data.mkdir()
        ensure_user(data, "admin", "admin")
        Store(data / "stackpilot.sqlite3").set_setting("stack", {"project": project, "files": [], "profiles": []})
        server = LiveServer(data_dir=data, env={"STACKPILOT_STACK_DIR": str(stack),
                                                "STACKPILOT_LOG_LEVEL": "WARNING"}).start()
        session = server.session()
        flood = container_id(client, project, "flood")
        time.sleep(1.0)

        sdk, ws, skipped = [], [], 0
        for _ in range(3):
            sdk.append(sdk_rate(client, flood, args.window))
            rate, lost = ws_rate(server, session, "flood", args.window)
            ws.append(rate)
            skipped += lost
        sdk_mean, ws_mean = statistics.mean(sdk), statistics.mean(ws)
        log.info("throughput: docker logs -f via SDK %.0f lines/s (runs %s)", sdk_mean, [round(x) for x in sdk])
        log.info("throughput: WebSocket viewer      %.0f lines/s (runs %s), %d lines reported skipped",
                 ws_mean, [round(x) for x in ws], skipped)
        log.info("throughput ratio WebSocket/SDK: %.2f (target >= 0.8)", ws_mean / sdk_mean)
        compose(stack, project, "stop", "-t", "1", "flood")

        lat = latencies(server, session, 10.0)
        log.info("latency line -> client over %d lines: p50 %.1f ms, p95 %.1f ms, max %.1f ms (target p95 < 250)",
                 len(lat), pct(lat, 50), pct(lat, 95), max(lat))

        idle = health_times(server, 150)
        log.info("/api/health with no viewer: p50 %.1f ms, p95 %.1f ms", pct(idle, 50), pct(idle, 95))
        busy, counts = viewers(server, session, 40, 8.0)
        log.info("/api/health with 40 viewers on a steady stream: p50 %.1f ms, p95 %.1f ms over %d calls "
                 "(target p95 < 200); lines per viewer min %d, max %d",
                 pct(busy, 50), pct(busy, 95), len(busy), min(counts), max(counts))
    finally:
        if server is not None:
            server.stop()
        compose(stack, project, "down", "-v", "-t", "0")
        client.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
