"""The live service table, against the real waitress server (prints figures; asserts nothing).

    .venv/bin/python bench/bench_live.py [--containers 50] [--changes 10] [--idle 60]

Prints, with N running busybox containers:
  - host `docker stop`/`docker start` -> the changed cell at an open page: over the push channel
    (Server-Sent Events, one engine event listener) and, as the same-run baseline, through the
    table poll every 2 s the page used before (p50/p95; target push p95 < 1 s);
  - bytes an idle page receives in a minute: the push channel against the 2 s poll (request and
    response headers counted for the poll; target push < 150 kB/min);
  - the server's CPU over the idle minute, both ways.
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

from _common import p95  # noqa: E402
from _common import row  # noqa: E402

from app.compose import Runners  # noqa: E402
from app.store import Store  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402

VERSION = re.compile(r'name="v" value="([^"]+)"')


def compose_file(image: str, n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [
            f"  svc{i:02d}:",
            f"    image: {image}",
            "    pull_policy: never",
            '    command: ["sleep", "86400"]',
            "    stop_grace_period: 1s",
        ]
    return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PushViewer:
    """An open page's push channel: a real SSE client on /live/services with the page's versions."""

    def __init__(self, server: LiveServer, session) -> None:
        page = session.get(server.url + "/services", timeout=30).text
        params = [("v", v) for v in VERSION.findall(page)]
        self.response = session.get(server.url + "/live/services", params=params, stream=True, timeout=60)
        assert self.response.headers["content-type"].startswith("text/event-stream"), self.response.status_code
        self.bytes = 0
        self.text = ""
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        rest = ""
        try:
            for chunk in self.response.raw.stream(65536, decode_content=False):
                lines = (rest + chunk.decode(errors="replace")).split("\n")
                rest = lines.pop()
                with self.cond:
                    self.bytes += len(chunk) + 7  # + the chunked framing of each write
                    self.text += "".join(line[6:] + "\n" for line in lines if line.startswith("data: "))
                    self.cond.notify_all()
        except Exception:  # noqa: BLE001 - closed by the bench
            return

    def mark(self) -> int:
        with self.cond:
            return len(self.text)

    def wait_for(self, pattern: re.Pattern, mark: int, start: float, timeout: float = 10.0) -> float | None:
        """Seconds from start until pattern appears after mark (None on timeout)."""
        with self.cond:
            while time.monotonic() - start < timeout:
                if pattern.search(self.text, max(0, mark)):
                    return time.monotonic() - start
                self.cond.wait(0.05)
        return None

    def close(self) -> None:
        self.response.close()


class PollViewer:
    """The page as it was: GET /services/table every 2 s with its versions; counts every byte."""

    def __init__(self, server: LiveServer, session, interval: float = 2.0) -> None:
        self.server, self.session, self.interval = server, session, interval
        page = session.get(server.url + "/services", timeout=30).text
        self.versions = dict(v.partition(":")[::2] for v in VERSION.findall(page))
        self.bytes = 0
        self.seen = ""
        self.stop = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        url = self.server.url + "/services/table"
        while not self.stop.is_set():
            params = [("v", f"{k}:{v}") for k, v in self.versions.items()]
            r = self.session.get(url, params=params, headers={"HX-Request": "true"}, timeout=30)
            request_bytes = len(r.request.url) + sum(len(k) + len(v) + 4 for k, v in r.request.headers.items()) + 20
            response_bytes = len(r.content) + sum(len(k) + len(v) + 4 for k, v in r.headers.items()) + 20
            with self.lock:
                self.bytes += request_bytes + response_bytes
                if r.status_code == 200:
                    self.seen += r.text
                    for v in VERSION.findall(r.text):
                        key, _, value = v.partition(":")
                        self.versions[key] = value
            self.stop.wait(self.interval)

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)

    def wait_for(self, pattern: re.Pattern, mark: int, start: float, timeout: float = 10.0) -> float | None:
        while time.monotonic() - start < timeout:
            with self.lock:
                if pattern.search(self.seen, max(0, mark)):
                    return time.monotonic() - start
            time.sleep(0.02)
        return None

    def close(self) -> None:
        self.stop.set()


def state_pattern(service: str, running: bool) -> re.Pattern:
    state = "running" if running else "stopped"
    return re.compile(rf'id="r-{service}-state"[^>]*>\s*<input[^>]*>\s*<span class="badge[^"]*" data-state="{state}"')


class EngineEvents:
    """The engine's own time of every die/start of the project's containers (docker events)."""

    def __init__(self, project: str) -> None:
        import docker

        self.client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=None)
        self.times: list[tuple[str, str, float]] = []
        self.stream = self.client.events(
            decode=True, filters={"type": "container", "label": f"com.docker.compose.project={project}"}
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                name = (event.get("Actor") or {}).get("Attributes", {}).get("name", "")
                self.times.append((name, event.get("Action", ""), event.get("timeNano", 0) / 1e9))
        except Exception:  # noqa: BLE001 - closed at the end
            return

    def when(self, name: str, action: str, after: float) -> float | None:
        return next((t for n, a, t in self.times if n == name and a == action and t >= after), None)

    def close(self) -> None:
        self.stream.close()
        self.client.close()


def flip_latencies(
    viewer, project: str, services: list[str], changes: int, events: EngineEvents
) -> tuple[list[float], list[float]]:
    """Stop then start services on the host. Returns (seconds from the engine's event time of the
    change to the cell arriving, seconds from the `docker` command's start to the cell arriving)."""
    from_event, from_command = [], []
    for i in range(changes):
        service = services[(i // 2) % len(services)]
        running = i % 2 == 1  # stop first, then start again
        name = f"{project}-{service}-1"
        cmd = ["docker", "start" if running else "stop", *(["-t", "0"] if not running else []), name]
        mark, start, wall = viewer.mark(), time.monotonic(), time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode:
            print(f"  ({' '.join(cmd)} failed, change left out: {done.stderr.strip()[:200]})")
            continue
        took = viewer.wait_for(state_pattern(service, running), mark, start, timeout=10)
        if took is None:
            from_event.append(float("inf"))
            from_command.append(float("inf"))
            continue
        from_command.append(took)
        happened = events.when(name, "start" if running else "die", wall - 0.5)
        from_event.append(wall + took - happened if happened else took)
    return from_event, from_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--changes", type=int, default=10, help="host-side stops/starts per channel")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle-page measurement")
    args = parser.parse_args()
    image = images.ensure_busybox_image()
    project = f"spbench-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="spbench-"))
    stack = work / project
    stack.mkdir()
    (stack / "docker-compose.yml").write_text(compose_file(image, args.containers))
    base = [*Runners().compose_command(), "--project-directory", str(stack), "-p", project]
    server = None
    try:
        subprocess.run([*base, "up", "-d"], check=True, capture_output=True, timeout=900)
        data = work / "data"
        data.mkdir()
        Store(data / "stackpilot.sqlite3").set_setting("stack", {"project": project, "files": [], "profiles": []})
        server = LiveServer(
            data_dir=data, env={"STACKPILOT_STACK_DIR": str(stack), "STACKPILOT_LOG_LEVEL": "WARNING"}
        ).start()
        session = server.session()
        services = [f"svc{i:02d}" for i in range(min(5, args.containers))]

        events = EngineEvents(project)
        poll = PollViewer(server, session)
        time.sleep(3)
        polled, polled_cmd = flip_latencies(poll, project, services, args.changes, events)
        poll.close()
        push = PushViewer(server, session)
        time.sleep(3)
        pushed, pushed_cmd = flip_latencies(push, project, services, args.changes, events)
        push.close()
        events.close()
        print(
            f"\n1. host docker stop/start -> cell at an open page ({args.changes} changes, {args.containers} "
            "containers), from the engine's event time"
        )
        row("2 s poll (before): p50 / p95", f"{statistics.median(polled):.2f} / {p95(polled):.2f} s", "baseline")
        row(
            "push (SSE + event listener): p50 / p95",
            f"{statistics.median(pushed):.2f} / {p95(pushed):.2f} s",
            "p95 < 1 s",
            p95(pushed) < 1.0,
        )
        row("ratio push / poll (p95)", f"{p95(pushed) / p95(polled):.2f}")
        row("from the docker command's start: poll p95 / push p95", f"{p95(polled_cmd):.2f} / {p95(pushed_cmd):.2f} s")

        time.sleep(8)  # nothing open: let the sampler and the listener wind down
        poll = PollViewer(server, session)
        time.sleep(5)
        b0, c0 = poll.bytes, cpu_seconds(server.proc.pid)
        time.sleep(args.idle)
        poll_rate = (poll.bytes - b0) / args.idle * 60
        poll_cpu = (cpu_seconds(server.proc.pid) - c0) / args.idle * 60
        poll.close()
        time.sleep(8)
        push = PushViewer(server, session)
        time.sleep(5)
        b0, c0 = push.bytes, cpu_seconds(server.proc.pid)
        time.sleep(args.idle)
        push_rate = (push.bytes - b0) / args.idle * 60
        push_cpu = (cpu_seconds(server.proc.pid) - c0) / args.idle * 60
        push.close()
        print(f"\n2. an idle page with {args.containers} containers, over {args.idle:.0f} s")
        row("2 s poll (before): bytes/min", f"{poll_rate / 1000:.1f} kB", "baseline")
        row("push: bytes/min", f"{push_rate / 1000:.1f} kB", "< 150 kB", push_rate < 150_000)
        row("ratio push / poll", f"{push_rate / poll_rate:.2f}")
        row("server CPU-s/min: poll / push", f"{poll_cpu:.2f} / {push_cpu:.2f}")
    finally:
        if server is not None:
            server.stop()
        subprocess.run([*base, "down", "-v", "-t", "0", "--remove-orphans"], capture_output=True, timeout=900)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
