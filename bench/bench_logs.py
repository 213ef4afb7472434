"""Benchmarks of the live logs, against the real engine and the real waitress server.

    .venv/bin/python bench/bench_logs.py [--window 5] [--rounds 3]

Prints:
  - throughput: lines/s a WebSocket viewer receives from a container writing as fast as it can,
    against `docker compose logs -f` on the same container in the same run, alternating windows,
    medians of the rounds (target ratio >= 1.0 with 0 lines skipped); the Docker SDK's own
    `logs(follow)` for reference; a viewer that reads nothing for a while is told what it missed;
  - latency: engine timestamp of a line -> arrival at the WebSocket client (target p95 < 50 ms);
  - /api/health p50/p95 with 40 log viewers open on a steady stream (target p95 < 200 ms),
    next to the same figure with no viewer.
Everything it creates is named spbench-* and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from _common import row  # noqa: E402

import docker  # noqa: E402
from app.compose import Runners  # noqa: E402
from app.logstream.lines import parse_stamp  # noqa: E402
from app.store import Store  # noqa: E402
from tests.perf.rawws import RawWS  # noqa: E402
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


def compose_base(directory: Path, project: str) -> list[str]:
    return [*Runners().compose_command(), "--project-directory", str(directory), "-p", project]


def compose(directory: Path, project: str, *args: str) -> None:
    subprocess.run([*compose_base(directory, project), *args], check=True, capture_output=True, timeout=180)


def compose_rate(directory: Path, project: str, service: str, window: float) -> float:
    """Lines/s `docker compose logs -f --tail 0` prints for the service (the baseline)."""
    proc = subprocess.Popen(
        [*compose_base(directory, project), "logs", "-f", "--no-color", "--tail", "0", service],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    )
    try:
        fd = proc.stdout.fileno()
        first = os.read(fd, 1 << 20)  # the stream is live once the first bytes arrive
        count = 0
        start = time.monotonic()
        end = start + window
        while time.monotonic() < end:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            count += data.count(b"\n")
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    del first
    return count / elapsed


def container_id(client, project: str, service: str) -> str:
    found = client.containers.list(
        filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}
    )
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


LINE_ITEM = re.compile(r'\[\d+,"')  # a line item starts so; escaped log text cannot (its quotes are \")
SKIP_ITEM = re.compile(r'\{"t":"skip","n":(\d+)\}')


def ws_rate(server: LiveServer, session, service: str, window: float) -> tuple[float, int]:
    """Lines/s delivered to a WebSocket viewer (history excluded), and lines it was told were skipped.

    The viewer is a bare socket reader counting items with two regular expressions, so the client
    costs about what `docker compose logs -f`'s reader does, not a JSON parse per frame."""
    ws = RawWS("127.0.0.1", server.port, f"/logs/-/ws?s={service}&tail=1", server.ws_headers(session), rcvbuf=4 << 20)
    count = skipped = 0
    try:
        ws.receive(timeout=10)  # hello
        ws.receive(timeout=10)  # the tail line
        start = time.monotonic()
        end = start + window
        while time.monotonic() < end:
            raw = ws.receive(timeout=1)
            if not raw:
                continue
            count += len(LINE_ITEM.findall(raw))
            skipped += sum(int(n) for n in SKIP_ITEM.findall(raw))
        elapsed = time.monotonic() - start
    finally:
        ws.close()
    return count / elapsed, skipped


def slow_viewer(server: LiveServer, session, service: str, stall: float, window: float) -> int:
    """A viewer that stops reading its socket for `stall` seconds: the lines it is told it missed."""
    ws = RawWS("127.0.0.1", server.port, f"/logs/-/ws?s={service}&tail=1", server.ws_headers(session))
    skipped = 0
    try:
        ws.receive(timeout=10)
        time.sleep(stall)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        end = time.monotonic() + window
        while time.monotonic() < end and not skipped:
            raw = ws.receive(timeout=1)
            if raw:
                skipped += sum(int(n) for n in SKIP_ITEM.findall(raw))
    finally:
        ws.close()
    return skipped


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
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/viewer rounds")
    parser.add_argument("--viewers", type=int, default=40, help="viewers open while /api/health is timed")
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
        server = LiveServer(
            data_dir=data,
            env={
                "STACKPILOT_STACK_DIR": str(stack),
                "STACKPILOT_LOG_LEVEL": "WARNING",
                "STACKPILOT_MAX_LOG_SOCKETS_PER_USER": str(args.viewers + 4),
            },
        ).start()
        session = server.session()
        flood = container_id(client, project, "flood")
        time.sleep(1.0)

        base, sdk, ws, skipped = [], [], [], 0
        for _ in range(args.rounds):
            base.append(compose_rate(stack, project, "flood", args.window))
            rate, lost = ws_rate(server, session, "flood", args.window)
            ws.append(rate)
            skipped += lost
            sdk.append(sdk_rate(client, flood, args.window))
        base_m, ws_m, sdk_m = statistics.median(base), statistics.median(ws), statistics.median(sdk)
        print(f"\n1. log flood: lines/s, median of {args.rounds} alternating {args.window:.0f} s windows")
        row("docker compose logs -f (baseline)", f"{base_m:,.0f}", str([round(x) for x in base]))
        row("Docker SDK logs(follow) (reference)", f"{sdk_m:,.0f}", str([round(x) for x in sdk]))
        row("WebSocket viewer that keeps up", f"{ws_m:,.0f}", str([round(x) for x in ws]))
        row("ratio viewer / compose logs -f", f"{ws_m / base_m:.2f}", ">= 1.0", ws_m / base_m >= 1.0)
        row("lines reported skipped to the fast viewer", str(skipped), "0", skipped == 0)
        lost = slow_viewer(server, session, "flood", 4.0, 15.0)
        row("slow viewer (reads nothing for 4 s): told skipped", f"{lost:,}", "> 0", lost > 0)
        compose(stack, project, "stop", "-t", "1", "flood")

        lat = latencies(server, session, 10.0)
        print(f"\n2. latency container -> client at rest ({len(lat)} lines, 50 lines/s)")
        row("p50", f"{pct(lat, 50):.1f} ms")
        row("p95", f"{pct(lat, 95):.1f} ms", "< 50 ms", pct(lat, 95) < 50)
        row("max", f"{max(lat):.1f} ms")

        idle = health_times(server, 150)
        busy, counts = viewers(server, session, args.viewers, 8.0)
        print(f"\n3. /api/health while {args.viewers} viewers follow a steady stream")
        row("no viewer p50 / p95", f"{pct(idle, 50):.1f} / {pct(idle, 95):.1f} ms")
        row(
            f"{args.viewers} viewers p50 / p95",
            f"{pct(busy, 50):.1f} / {pct(busy, 95):.1f} ms",
            "p95 < 200 ms",
            pct(busy, 95) < 200,
        )
        row("lines per viewer min / max", f"{min(counts)} / {max(counts)}")
    finally:
        if server is not None:
            server.stop()
        compose(stack, project, "down", "-v", "-t", "0")
        client.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
