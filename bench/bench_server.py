"""Foundation benchmark: cold start, idle memory, health latency under 50 open WebSockets.

Each figure is printed beside a baseline measured in the same run: a bare waitress "hello"
app for start-up and memory (started alternately with the server, --starts times each; medians),
and /api/health with no socket open for latency. The load average is printed before and after:
on 2 cores a load of 8 makes every start-up 2-4x slower.
Run: python3 bench/bench_server.py [--starts 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from _common import ROOT
from _common import p95
from _common import row
from _common import rss_mb

sys.path.insert(0, str(ROOT))
from tests.support.live import LiveServer  # noqa: E402
from tests.support.live import ensure_user  # noqa: E402
from tests.support.live import free_port  # noqa: E402

BARE_APP = textwrap.dedent("""
    import sys
    from waitress import serve
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=96, _quiet=True)
""")


def wait_200(url: str, timeout: float = 15) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if requests.get(url, timeout=0.5).status_code == 200:
                return time.perf_counter() - start
        except requests.RequestException:
            time.sleep(0.01)
    raise RuntimeError(f"{url} never answered")


def cold_start_bare() -> tuple[float, float]:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    try:
        wait_200(f"http://127.0.0.1:{port}/")
        elapsed = time.perf_counter() - start
        time.sleep(1)
        return elapsed, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def health_latencies(url: str, n: int = 200) -> list[float]:
    s = requests.Session()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s.get(url, timeout=5).raise_for_status()
        out.append((time.perf_counter() - t) * 1000)
    return out


@dataclass
class Start:
    seconds: float  # spawn -> first 200 from /api/health
    cpu: float  # CPU seconds the process used until then (user + system): what load cannot inflate
    rss: float = 0.0  # MB, 1.5 s after


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(data: str, checkout: Path = ROOT) -> tuple[LiveServer, Start]:
    """`python -m app` as a person starts it, from checkout; the server and its start-up figures."""
    srv = LiveServer(data_dir=Path(data), env={})
    srv.port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STACKPILOT_") and k != "PYTHONDONTWRITEBYTECODE"},
        "STACKPILOT_HOST": "127.0.0.1",
        "STACKPILOT_PORT": str(srv.port),
        "STACKPILOT_DATA_DIR": data,
        "STACKPILOT_LOG_LEVEL": "WARNING",
    }
    start = time.perf_counter()
    srv.proc = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_200(srv.url + "/api/health", timeout=30)
        return srv, Start(time.perf_counter() - start, cpu_seconds(srv.proc.pid))
    except BaseException:
        srv.stop()
        raise


def cold_starts(data: str, checkout: Path) -> Start:
    """One cold start and the idle RSS after it."""
    srv, figures = start_server(data, checkout)
    try:
        time.sleep(1.5)
        figures.rss = rss_mb(srv.proc.pid)
    finally:
        srv.stop()
    return figures


def medians(starts: list[Start]) -> Start:
    return Start(*(statistics.median(getattr(s, f) for s in starts) for f in ("seconds", "cpu", "rss")))


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=5, help="cold starts of each (alternating); medians")
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. `git worktree add /tmp/old <commit>`) started alternately with this one",
    )
    args = parser.parse_args()
    print("Stackpilot server benchmark (2-core machine; lower is better)")
    print(f"  load average before: {load()}")
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as other_data:
        ensure_user(Path(data), "admin", "admin")
        ensure_user(Path(other_data), "admin", "admin")
        start_server(data)[0].stop()  # the byte-code cache and the data dir, as any first start makes them
        if args.against:
            start_server(other_data, args.against)[0].stop()
        bares, ours, theirs = [], [], []
        for _ in range(args.starts):
            bares.append(cold_start_bare())
            ours.append(cold_starts(data, ROOT))
            if args.against:
                theirs.append(cold_starts(other_data, args.against))
        bare_start = statistics.median(b[0] for b in bares)
        bare_rss = statistics.median(b[1] for b in bares)
        mine = medians(ours)
        cold, idle_rss = mine.seconds, mine.rss
        srv, _ = start_server(data)
        try:
            time.sleep(1.5)
            base_lat = health_latencies(srv.url + "/api/health")
            session = srv.session()
            sockets = [srv.ws_connect("/api/ws/echo", session) for _ in range(50)]
            for ws in sockets:
                ws.send("x")
                ws.receive(timeout=5)
            ws_lat = health_latencies(srv.url + "/api/health")
            for ws in sockets:
                ws.close()
        finally:
            srv.stop()

    print(f"  load average after: {load()}")
    row(f"cold start to first 200 /api/health (median of {args.starts})", f"{cold:.2f} s", "target < 1.0 s", cold < 1.0)
    row("  each", " ".join(f"{s.seconds:.2f}" for s in ours))
    row("  CPU used until then (load does not inflate it)", f"{mine.cpu:.2f} s")
    row("  baseline: bare waitress hello app", f"{bare_start:.2f} s", f"ratio {cold / bare_start:.1f}x")
    if args.against:
        other = medians(theirs)
        row(f"  baseline: {args.against} (alternating)", f"{other.seconds:.2f} s", f"ratio {cold / other.seconds:.2f}x")
        row("    its CPU until then", f"{other.cpu:.2f} s", f"ratio {mine.cpu / other.cpu:.2f}x")
    row("idle RSS after the first /api/health", f"{idle_rss:.1f} MB", "target < 50 MB", idle_rss < 50)
    if args.against:
        row(f"  baseline: {args.against}", f"{other.rss:.1f} MB", f"ratio {idle_rss / other.rss:.2f}x")
    row("  baseline: bare waitress hello app", f"{bare_rss:.1f} MB", f"ratio {idle_rss / bare_rss:.1f}x")
    row("/api/health p95, no socket open", f"{p95(base_lat):.1f} ms")
    row("/api/health p95, 50 WebSockets open", f"{p95(ws_lat):.1f} ms", "target < 100 ms", p95(ws_lat) < 100)
    row("  ratio to no-socket baseline", f"{p95(ws_lat) / p95(base_lat):.2f}x")


if __name__ == "__main__":
    main()
