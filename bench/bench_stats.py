"""Stats cost and the scale curve (prints figures; asserts nothing).

    .venv/bin/python bench/bench_stats.py [--counts 10,50,200] [--window 20]

For each count of running busybox containers (one compose project, grown step by step):
  - the stats sampler's CPU in this process, in CPU-seconds per minute, while a viewer renews its
    lease every 2 s, against the one-shot sampler it replaced (every container asked with
    `stats?stream=0&one-shot=1` every 2 s from a pool of 48), measured in the same run; the
    engine's (dockerd's) CPU over the same windows; the oldest sample a viewer saw;
    targets: <= 1 CPU-s/min at 50, <= 4 at 200, samples < 3 s old;
  - how long after the last lease the sampler has no stats request open (target < 10 s);
  - the table fragment and the home page, median of 15 (target fragment < 100 ms at 200).
Everything it creates is named spbench-* and removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from _common import row  # noqa: E402
from _common import timed  # noqa: E402

import docker  # noqa: E402
from app import create_app  # noqa: E402
from app import settings as settings_module  # noqa: E402
from app.compose import Runners  # noqa: E402
from app.engine import Engine  # noqa: E402
from app.engine.stats import StatsSampler  # noqa: E402
from app.passwords import hash_password  # noqa: E402
from tests.support.images import ensure_busybox_image  # noqa: E402

PROJECT_LABEL = "com.docker.compose.project"


def compose_file(image: str, n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [
            f"  svc{i:03d}:",
            f"    image: {image}",
            "    pull_policy: never",
            '    command: ["sleep", "86400"]',
            "    stop_grace_period: 1s",
        ]
    return "\n".join(lines) + "\n"


def dockerd_cpu() -> float:
    """The default engine's (dockerd on /var/run/docker.sock) user+system CPU seconds so far."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd" and (
                b"/var/run/docker.sock" in cmdline or b"--host" not in cmdline
            ):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return 0.0


class OneShotSampler:
    """The sampler this replaced, reduced to its cost: one-shot stats of every running container
    of the project every 2 s, in parallel on its own pool."""

    def __init__(self, project: str, interval: float = 2.0, workers: int = 48) -> None:
        self.project = project
        self.interval = interval
        self.client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=30, max_pool_size=workers)
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.stop = threading.Event()
        self.samples: dict[str, float] = {}
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def one(self, cid: str) -> None:
        self.client.api.stats(cid, stream=False, one_shot=True)
        self.samples[cid] = time.time()

    def loop(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            rows = self.client.api.containers(
                filters={"label": [f"{PROJECT_LABEL}={self.project}"], "status": "running"}
            )
            list(self.pool.map(self.one, [r["Id"] for r in rows]))
            self.stop.wait(max(0.1, self.interval - (time.monotonic() - began)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.pool.shutdown()
        self.client.close()


def measure(start, watch, ages, window: float) -> tuple[float, float, float]:
    """(our CPU-s/min, dockerd CPU-s/min, oldest sample age seen) over the window after a warm-up."""
    start()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # warm-up: streams open, two readings for CPU %
        watch()
        time.sleep(0.5)
    cpu0, engine0, t0 = time.process_time(), dockerd_cpu(), time.monotonic()
    oldest = 0.0
    while time.monotonic() - t0 < window:
        watch()
        found = ages()
        oldest = max([oldest, *found]) if found else float("inf")
        time.sleep(2)
    elapsed = time.monotonic() - t0
    return ((time.process_time() - cpu0) / elapsed * 60, (dockerd_cpu() - engine0) / elapsed * 60, oldest)


def signed_in_client(app):
    store = app.extensions["stackpilot.store"]
    user = store.add_user("bench", hash_password("bench-password-long-enough"), "viewer")
    sid = secrets.token_urlsafe(32)
    store.add_session(sid, user.id)
    client = app.test_client()
    with client.session_transaction() as s:
        s["sid"] = sid
    return client


def median_ms(fn, repeat: int = 15) -> float:
    fn()
    return statistics.median(timed(fn) for _ in range(repeat)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,50,200", help="running container counts, ascending")
    parser.add_argument("--window", type=float, default=20.0, help="seconds each sampler is measured")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    logging.basicConfig(level=logging.ERROR)
    image = ensure_busybox_image()
    project = f"spbench-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    stack_dir = work / "stack"
    stack_dir.mkdir()
    (stack_dir / "docker-compose.yml").write_text(compose_file(image, counts[0]))
    base = [*Runners().compose_command(), "--project-directory", str(stack_dir), "-p", project]
    app = create_app(
        {
            "SETTINGS": settings_module.from_env(
                {"STACKPILOT_DATA_DIR": str(work / "data"), "STACKPILOT_STACK_DIR": str(stack_dir)}
            ),
            "TESTING": True,
        }
    )
    app.extensions["stackpilot.store"].set_setting("stack", {"project": project, "files": [], "profiles": []})
    client = signed_in_client(app)
    app.extensions["stackpilot.stats"].stop()  # the app's own sampler stays out of the CPU figures
    results = []
    try:
        for n in counts:
            started = time.perf_counter()
            (stack_dir / "docker-compose.yml").write_text(compose_file(image, n))  # the table has n rows
            subprocess.run([*base, "up", "-d"], check=True, capture_output=True, timeout=1200)
            print(f"\n== {n} running containers (up in {time.perf_counter() - started:.0f} s)")

            old = OneShotSampler(project)
            old_cpu, old_engine, old_age = measure(
                old.thread.start, lambda: None, lambda o=old: [time.time() - t for t in o.samples.values()], args.window
            )
            old.close()

            sampler = StatsSampler(Engine())
            new_cpu, new_engine, new_age = measure(
                lambda: None,
                lambda sm=sampler: sm.watch(project),
                lambda sm=sampler: [s.age() for s in sm.snapshot().values()],
                args.window,
            )
            streams = sampler.streams
            sampler.watch(project)  # the viewer's last renewal
            left = time.monotonic()
            while sampler.running or sampler.streams:
                time.sleep(0.1)
            gone = time.monotonic() - left
            sampler.stop()

            def fragment(n=n):
                r = client.get("/services/table")
                assert r.status_code == 200 and r.data.count(b'class="svc-row') == n, r.status_code

            frag = median_ms(fragment)
            home = median_ms(lambda: client.get("/"))
            results.append((n, old_cpu, new_cpu, frag, home))
            target = 1.0 if n <= 50 else 4.0 * n / 200
            row("one-shot sampler (before), CPU-s/min", f"{old_cpu:.2f}", "baseline")
            row(
                "streaming sampler, CPU-s/min",
                f"{new_cpu:.2f}",
                f"<= {target:.1f}" if n in (50, 200) else "",
                new_cpu <= target if n in (50, 200) else None,
            )
            row("ratio streaming / one-shot", f"{new_cpu / old_cpu:.2f}")
            row("dockerd CPU-s/min: one-shot / streaming", f"{old_engine:.1f} / {new_engine:.1f}")
            row("stats requests open while watched", str(streams), str(n), streams == n)
            row(
                "oldest sample a viewer saw: one-shot / streaming",
                f"{old_age:.1f} / {new_age:.1f} s",
                "< 3 s",
                new_age < 3,
            )
            row("last lease -> no stats request open", f"{gone:.1f} s", "< 10 s", gone < 10)
            row(
                "table fragment (full render), median",
                f"{frag:.1f} ms",
                "< 100 ms" if n == 200 else "",
                frag < 100 if n == 200 else None,
            )
            row("home page, median", f"{home:.1f} ms")
        print("\ngrowth curve")
        print(
            f"  {'containers':>10} {'one-shot CPU-s/min':>19} {'streaming CPU-s/min':>20} {'fragment ms':>12} "
            f"{'home ms':>8}"
        )
        for n, old_cpu, new_cpu, frag, home in results:
            print(f"  {n:>10} {old_cpu:>19.2f} {new_cpu:>20.2f} {frag:>12.1f} {home:>8.1f}")
    finally:
        subprocess.run([*base, "down", "-v", "-t", "0", "--remove-orphans"], capture_output=True, timeout=1200)
        print(f"\ncleanup: project {project} down")


if __name__ == "__main__":
    assert ROOT
    main()
