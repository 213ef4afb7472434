"""Benchmarks of the live logs, against the real engine and the real waitress server.

    .venv/bin/python bench/bench_logs.py [--window 4] [--rounds 7]

Prints:
  - throughput: lines/s a WebSocket viewer receives from a container writing as fast as it can,
    against `docker compose logs -f` on the same container in the same run, windows alternating
    (the order flips every round), medians of the rounds (target ratio >= 1.0 with 0 lines
    skipped); the Docker SDK's own `logs(follow)` and compose run under SCHED_BATCH (`chrt -b 0`,
    the policy our followers use) for reference; for every reader the CPU it
    spent per line received (the server process for the viewer; compose plus the pipe reader
    for the baseline) and dockerd's, and the load average around each window; a viewer that
    reads nothing for a while is told what it missed;
  - latency: engine timestamp of a line -> arrival at the WebSocket client (target p95 < 50 ms);
  - /api/health p50/p95 with 40 log viewers open on a steady stream (target p95 < 200 ms),
    next to the same figure with no viewer.
Everything it creates is named spbench-* and removed at the end.
"""

from __future__ import annotations

import argparse
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


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 if it is not ours to see)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def dockerd_pid() -> int | None:
    found = subprocess.run(["pgrep", "-o", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


class Window:
    """One measured window: lines, seconds, CPU of the reader's process(es), of dockerd, load."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.dockerd = dockerd_pid()
        self.load = os.getloadavg()[0]

    def __enter__(self) -> Window:
        self.cpu0 = sum(cpu_seconds(p) for p in self.pids)
        self.dockerd0 = cpu_seconds(self.dockerd) if self.dockerd else 0.0
        self.client0 = time.thread_time()
        self.start = time.monotonic()
        self.lines = 0
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.monotonic() - self.start
        self.cpu = sum(cpu_seconds(p) for p in self.pids) - self.cpu0
        self.client = time.thread_time() - self.client0
        self.dockerd_cpu = (cpu_seconds(self.dockerd) - self.dockerd0) if self.dockerd else 0.0
        self.load = max(self.load, os.getloadavg()[0])

    @property
    def rate(self) -> float:
        return self.lines / self.elapsed

    def per_line(self, seconds: float) -> float:
        """Microseconds of CPU per line received."""
        return seconds / max(1, self.lines) * 1e6


def compose_rate(directory: Path, project: str, service: str, window: float, batch: bool = False) -> Window:
    """Lines/s `docker compose logs -f --tail 0` prints for the service (the baseline); batch: run
    under SCHED_BATCH (`chrt -b 0`), as our log followers run (a reference, not the baseline)."""
    proc = subprocess.Popen(
        [
            *(["chrt", "-b", "0"] if batch else []),
            *compose_base(directory, project),
            *("logs", "-f", "--no-color", "--tail", "0", service),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    )
    try:
        fd = proc.stdout.fileno()
        os.read(fd, 1 << 20)  # the stream is live once the first bytes arrive
        with Window([proc.pid]) as w:
            end = w.start + window
            while time.monotonic() < end:
                data = os.read(fd, 1 << 20)
                if not data:
                    break
                w.lines += data.count(b"\n")
    finally:
        proc.kill()
        proc.wait()
    return w


def container_id(client, project: str, service: str) -> str:
    found = client.containers.list(
        filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}
    )
    return found[0].id


def sdk_rate(client, cid: str, window: float) -> Window:
    """Lines/s read by the Docker SDK from `logs -f` (the `docker logs -f` baseline)."""
    container = client.containers.get(cid)
    stream = container.logs(stream=True, follow=True, tail=0)  # docker logs -f --tail 0
    with Window([]) as w:
        end = w.start + window
        for chunk in stream:
            w.lines += chunk.count(b"\n")
            if time.monotonic() >= end:
                break
    stream.close()
    return w


SKIP_ITEM = re.compile(rb'\{"t":"skip","n":(\d+)\}')


def count_frame(payload: bytes) -> tuple[int, int]:
    """(lines, lines reported skipped) in one message of the log socket, without decoding it: an L
    frame (app/logstream/wire.py) holds as many lines as newlines (its header ends in one, its rows
    are joined by them); any other message is JSON and may report skips."""
    if payload[:1] == b"L":
        return payload.count(b"\n"), 0
    return 0, sum(int(n) for n in SKIP_ITEM.findall(payload))


def ws_rate(server: LiveServer, session, service: str, window: float) -> tuple[Window, int]:
    """Lines/s delivered to a WebSocket viewer (history excluded), and lines it was told were skipped.

    The viewer is a bare socket reader that counts newlines per frame (a C loop, no decoding), so
    it costs less per line than reading compose's output from a pipe (both are printed)."""
    ws = RawWS("127.0.0.1", server.port, f"/logs/-/ws?s={service}&tail=1", server.ws_headers(session), rcvbuf=4 << 20)
    skipped = 0
    try:
        ws.receive(timeout=10)  # hello
        ws.receive(timeout=10)  # the tail line
        with Window([server.proc.pid]) as w:
            end = w.start + window
            while time.monotonic() < end:
                raw = ws.receive_bytes(timeout=1)
                if not raw:
                    continue
                lines, lost = count_frame(raw)
                w.lines += lines
                skipped += lost
    finally:
        ws.close()
    return w, skipped


def slow_viewer(server: LiveServer, session, service: str, stall: float, window: float) -> tuple[int, int, int]:
    """A viewer that stops reading its socket for `stall` seconds, then reads on: the lines it is
    told it missed (summed over every notice until `window` seconds after the first), how many
    notices, and the lines it received meanwhile."""
    ws = RawWS("127.0.0.1", server.port, f"/logs/-/ws?s={service}&tail=1", server.ws_headers(session))
    skipped = notices = received = 0
    try:
        ws.receive(timeout=10)
        time.sleep(stall)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        end = time.monotonic() + 15.0
        while time.monotonic() < end:
            raw = ws.receive_bytes(timeout=1)
            if not raw:
                continue
            lines, lost = count_frame(raw)
            received += lines
            if lost:
                if not notices:
                    end = time.monotonic() + window
                notices += 1
                skipped += lost
    finally:
        ws.close()
    return skipped, notices, received


def stamps(raw: str) -> list[str]:
    """The engine stamps of the lines in one message (none unless it is an L frame)."""
    if not raw.startswith("L"):
        return []
    return [row.partition(" ")[0] for row in raw.partition("\n")[2].split("\n")]


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
            for stamp in stamps(raw):
                out.append((now - parse_stamp(stamp.encode())) / 1e6)
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
                counts[i] += len(stamps(raw))

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
    parser.add_argument("--window", type=float, default=4.0, help="seconds per throughput window")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of baseline / viewer / SDK windows")
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

        base, sdk, ws, batch, skipped = [], [], [], [], 0
        readers = ["compose", "ws", "sdk"] + (["batch"] if shutil.which("chrt") else [])
        print(f"\n1. log flood: lines/s, median of {args.rounds} alternating {args.window:.0f} s windows")
        print(f"   load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for r in range(args.rounds):
            order = readers if r % 2 == 0 else readers[::-1]
            for which in order:
                if which == "compose":
                    w = compose_rate(stack, project, "flood", args.window)
                    base.append(w)
                    cost = f"compose {w.per_line(w.cpu):.2f} + pipe reader {w.per_line(w.client):.2f}"
                elif which == "ws":
                    w, lost = ws_rate(server, session, "flood", args.window)
                    ws.append(w)
                    skipped += lost
                    cost = f"server {w.per_line(w.cpu):.2f} + client {w.per_line(w.client):.2f}"
                elif which == "batch":
                    w = compose_rate(stack, project, "flood", args.window, batch=True)
                    batch.append(w)
                    cost = f"compose {w.per_line(w.cpu):.2f} + pipe reader {w.per_line(w.client):.2f}"
                else:
                    w = sdk_rate(client, flood, args.window)
                    sdk.append(w)
                    cost = f"SDK reader {w.per_line(w.client):.2f}"
                print(
                    f"   round {r + 1} {which:8} {w.rate:>8,.0f} lines/s   CPU us/line: {cost}, "
                    f"dockerd {w.per_line(w.dockerd_cpu):.2f}   load {w.load:.1f}",
                    flush=True,
                )
        rates = {name: [w.rate for w in ws_] for name, ws_ in (("base", base), ("sdk", sdk), ("ws", ws))}
        base_m, ws_m, sdk_m = (statistics.median(rates[k]) for k in ("base", "ws", "sdk"))
        row("docker compose logs -f (baseline)", f"{base_m:,.0f}", str([round(x) for x in rates["base"]]))
        row("Docker SDK logs(follow) (reference)", f"{sdk_m:,.0f}", str([round(x) for x in rates["sdk"]]))
        if batch:
            row(
                "compose logs -f under chrt -b 0 (reference)",
                f"{statistics.median(w.rate for w in batch):,.0f}",
                str([round(w.rate) for w in batch]),
            )
        row("WebSocket viewer that keeps up", f"{ws_m:,.0f}", str([round(x) for x in rates["ws"]]))
        row("ratio viewer / compose logs -f", f"{ws_m / base_m:.2f}", ">= 1.0", ws_m / base_m >= 1.0)
        pairs = [w.rate / b.rate for w, b in zip(ws, base, strict=True)]
        row(
            "  same-round ratios: median / rounds won",
            f"{statistics.median(pairs):.2f} / {sum(p >= 1.0 for p in pairs)} of {len(pairs)}",
        )
        row("lines reported skipped to the fast viewer", str(skipped), "0", skipped == 0)
        row(
            "CPU us/line: compose+pipe reader / server+client",
            f"{statistics.median(w.per_line(w.cpu + w.client) for w in base):.2f} / "
            f"{statistics.median(w.per_line(w.cpu + w.client) for w in ws):.2f}",
            "medians",
        )
        row("load average after", " / ".join(f"{x:.1f}" for x in os.getloadavg()))
        lost, notices, got = slow_viewer(server, session, "flood", 4.0, 3.0)
        row("slow viewer (reads nothing for 4 s): told skipped", f"{lost:,}", "> 0", lost > 0)
        row("  in notices / lines it received meanwhile", f"{notices} / {got:,}")
        compose(stack, project, "stop", "-t", "1", "flood")

        lat = latencies(server, session, 10.0)
        print(f"\n2. latency container -> client at rest ({len(lat)} lines, 50 lines/s)")
        print(f"   load average: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
        row("p50", f"{pct(lat, 50):.1f} ms")
        row("p95", f"{pct(lat, 95):.1f} ms", "< 50 ms", pct(lat, 95) < 50)
        row("max", f"{max(lat):.1f} ms")

        idle = health_times(server, 150)
        busy, counts = viewers(server, session, args.viewers, 8.0)
        print(f"\n3. /api/health while {args.viewers} viewers follow a steady stream")
        print(f"   load average: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
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
