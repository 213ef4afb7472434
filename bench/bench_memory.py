"""Memory and start-up of the real server process (prints figures; asserts nothing).

    .venv/bin/python bench/bench_memory.py [--minutes 3] [--every 10]

Prints:
  - cold start: `python -m app` spawned -> first 200 from /api/health (median of 5, byte-code
    cache warm as after a first start), against a bare `python -c pass` and
    `python -c "import flask"` measured in the same run (target < 1.0 s);
  - idle RSS after start-up with nobody connected (target < 50 MB);
  - the RSS curve over the run with a services page (its push channel) and a log view (a
    WebSocket on a steady stream) open, one point per --every seconds; after a warm-up minute
    the spread must stay within +-3 MB.
Everything it creates is named spbench-* and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
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
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from _common import row  # noqa: E402
from _common import rss_mb  # noqa: E402

from app.compose import Runners  # noqa: E402
from app.store import Store  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402
from tests.support.live import free_port  # noqa: E402

VERSION = re.compile(r'name="v" value="([^"]+)"')
COMPOSE = """
services:
  steady:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "i=0; while :; do i=$$((i+1)); echo \\"steady $$i\\"; sleep 0.05; done"]
    stop_grace_period: 1s
  idle:
    image: {image}
    pull_policy: never
    command: ["sleep", "86400"]
    stop_grace_period: 1s
"""


def clean_env(data: Path, port: int, stack: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STACKPILOT_", "MANAGEMENT_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        {
            "STACKPILOT_HOST": "127.0.0.1",
            "STACKPILOT_PORT": str(port),
            "STACKPILOT_DATA_DIR": str(data),
            "STACKPILOT_STACK_DIR": str(stack),
            "STACKPILOT_LOG_LEVEL": "WARNING",
        }
    )
    return env


def cold_start(data: Path, stack: Path) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=clean_env(data, port, stack),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                time.sleep(0.01)
            if proc.poll() is not None or time.perf_counter() - started > 30:
                return float("inf")
    finally:
        proc.terminate()
        proc.wait(10)


def bare(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the RSS curve")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between RSS points")
    args = parser.parse_args()
    image = images.ensure_busybox_image()
    project = f"spbench-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="spbench-"))
    stack = work / project
    stack.mkdir()
    (stack / "docker-compose.yml").write_text(COMPOSE.format(image=image))
    base = [*Runners().compose_command(), "--project-directory", str(stack), "-p", project]
    server = None
    stop = threading.Event()
    try:
        subprocess.run([*base, "up", "-d"], check=True, capture_output=True, timeout=300)
        data = work / "data"
        data.mkdir()
        Store(data / "stackpilot.sqlite3").set_setting("stack", {"project": project, "files": [], "profiles": []})

        cold_start(data, stack)  # writes the byte-code cache, as any first start does
        starts = [cold_start(data, stack) for _ in range(5)]
        python = statistics.median(bare("pass") for _ in range(5))
        flask = statistics.median(bare("import flask") for _ in range(5))
        print("\n1. cold start: spawn -> first /api/health 200 (median of 5)")
        row("load average (1, 5, 15 min)", " ".join(f"{x:.1f}" for x in os.getloadavg()))
        row("each start", " ".join(f"{t:.2f}" for t in starts))
        row("python -c pass (reference)", f"{python:.2f} s")
        row("python -c 'import flask' (reference)", f"{flask:.2f} s")
        row("stackpilot", f"{statistics.median(starts):.2f} s", "< 1.0 s", statistics.median(starts) < 1.0)
        row("ratio to 'import flask'", f"{statistics.median(starts) / flask:.1f}")

        server = LiveServer(
            data_dir=data, env={"STACKPILOT_STACK_DIR": str(stack), "STACKPILOT_LOG_LEVEL": "WARNING"}
        ).start()
        time.sleep(3)
        idle = rss_mb(server.proc.pid)
        print("\n2. idle")
        row("RSS after start-up, nobody connected", f"{idle:.1f} MB", "< 50 MB", idle < 50)

        session = server.session()
        page = session.get(server.url + "/services", timeout=30).text
        versions = [("v", v) for v in VERSION.findall(page)]
        sse = session.get(server.url + "/live/services", params=versions, stream=True, timeout=60)
        ws = server.ws_connect("/logs/-/ws?s=steady&tail=100", session)
        received = [0, 0]

        def drain_sse() -> None:
            if sse.status_code == 404:  # a version without the push channel: the page polls every 2 s
                while not stop.is_set():
                    received[0] += len(session.get(server.url + "/services/table", params=versions, timeout=30).content)
                    stop.wait(2)
                return
            try:
                for chunk in sse.iter_content(None):
                    received[0] += len(chunk)
            except Exception:  # noqa: BLE001 - closed at the end
                return

        def drain_ws() -> None:
            while not stop.is_set():
                try:
                    raw = ws.receive(timeout=1)
                except Exception:  # noqa: BLE001
                    return
                if raw:
                    received[1] += len(raw)

        for fn in (drain_sse, drain_ws):
            threading.Thread(target=fn, daemon=True).start()
        curve = []
        start = time.monotonic()
        end = start + args.minutes * 60
        while time.monotonic() < end:
            curve.append((time.monotonic() - start, rss_mb(server.proc.pid)))
            time.sleep(args.every)
        curve.append((time.monotonic() - start, rss_mb(server.proc.pid)))
        print(f"\n3. RSS with a services page and a log view open, {args.minutes:.0f} min (MB)")
        print("  " + "  ".join(f"{t:.0f}s:{m:.1f}" for t, m in curve))
        settled = [m for t, m in curve if t >= min(60, args.minutes * 60 / 3)]
        spread = max(settled) - min(settled)
        row("spread after the warm-up", f"{spread:.1f} MB", "<= 6 MB (+-3)", spread <= 6)
        row("first -> last point", f"{curve[-1][1] - curve[0][1]:+.1f} MB")
        row("received: push bytes / log bytes", f"{received[0]:,} / {received[1]:,}")
        stop.set()
        sse.close()
        ws.close()
    finally:
        stop.set()
        if server is not None:
            server.stop()
        subprocess.run([*base, "down", "-v", "-t", "0", "--remove-orphans"], capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
