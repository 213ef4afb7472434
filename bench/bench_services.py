"""Service table benchmarks (prints figures; asserts nothing).

1. Table fragment render time with 50 running busybox containers, against the raw Docker SDK
   `containers.list()` measured in the same run (targets: ratio < 2 and < 150 ms).
2. Stats freshness with 30 running containers: every row's CPU/memory sample < 5 s old while a
   page polls the table like a browser does.

Run: python3 bench/bench_services.py   (needs the engine and the local busybox image)
"""

from __future__ import annotations

import logging
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row  # noqa: E402
from _common import timed  # noqa: E402

import docker  # noqa: E402
from app import create_app  # noqa: E402
from app import settings as settings_module  # noqa: E402
from app.compose import Runners  # noqa: E402
from app.passwords import hash_password  # noqa: E402
from tests.support.images import ensure_busybox_image  # noqa: E402

log = logging.getLogger("bench")
SERVICES = 50
RUNNING_FOR_STATS = 30


def compose_file(image: str, n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [
            f"  svc{i:02d}:",
            f"    image: {image}",
            "    pull_policy: never",
            '    command: ["sleep", "3600"]',
            "    stop_grace_period: 1s",
        ]
    return "\n".join(lines) + "\n"


def median_ms(fn, repeat: int = 15) -> float:
    fn()  # warm
    return statistics.median(timed(fn) for _ in range(repeat)) * 1000


def signed_in_client(app):
    store = app.extensions["stackpilot.store"]
    user = store.add_user("bench", hash_password("bench-password-long-enough"), "viewer")
    sid = secrets.token_urlsafe(32)
    store.add_session(sid, user.id)
    client = app.test_client()
    with client.session_transaction() as s:
        s["sid"] = sid
    return client


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # no setup-token banner in the figures
    image = ensure_busybox_image()
    project = f"spbench-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    stack_dir = work / "stack"
    stack_dir.mkdir()
    (stack_dir / "docker-compose.yml").write_text(compose_file(image, SERVICES))
    base = [*Runners().compose_command(), "--project-directory", str(stack_dir), "-p", project]
    sdk = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=60)
    try:
        started = time.perf_counter()
        subprocess.run([*base, "up", "-d", "--quiet-pull"], check=True, capture_output=True, timeout=600)
        print(f"services bench: {SERVICES} busybox containers up in {time.perf_counter() - started:.1f} s")

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

        def fragment():
            r = client.get("/services/table")  # no versions sent: the whole table, the worst case
            assert r.status_code == 200 and r.data.count(b'class="svc-row') == SERVICES, r.status_code

        cold = timed(fragment) * 1000
        ours = median_ms(fragment)
        page = median_ms(lambda: client.get("/services"))
        raw = median_ms(lambda: sdk.containers.list())
        label = f"com.docker.compose.project={project}"
        raw_project = median_ms(lambda: sdk.containers.list(filters={"label": label}))
        sparse = median_ms(lambda: sdk.containers.list(sparse=True))
        print("\n1. table fragment vs raw SDK list (median of 15, warm)")
        row("SDK containers.list() (all, inspects each)", f"{raw:.1f} ms", "baseline")
        row("SDK containers.list(project label filter)", f"{raw_project:.1f} ms")
        row("SDK containers.list(sparse=True)", f"{sparse:.1f} ms")
        row("table fragment, first request (cold caches)", f"{cold:.1f} ms")
        row("table fragment (50 rows, full render)", f"{ours:.1f} ms", "< 150 ms", ours < 150)
        row("ratio fragment / containers.list()", f"{ours / raw:.2f}", "< 2", ours / raw < 2)
        ratio = ours / raw_project
        row("ratio fragment / list(project filter)", f"{ratio:.2f}", "< 2", ratio < 2)
        row("ratio fragment / list(sparse=True) (one call)", f"{ours / sparse:.2f}")
        row("full /services page", f"{page:.1f} ms")

        # -- stats freshness -----------------------------------------------------------------
        stop = [f"svc{i:02d}" for i in range(RUNNING_FOR_STATS, SERVICES)]
        subprocess.run([*base, "stop", "-t", "0", *stop], check=True, capture_output=True, timeout=300)
        from app.web.services import snapshot

        worst: list[float] = []
        missing_max = 0
        deadline = time.monotonic() + 20
        with app.test_request_context("/services"):
            while time.monotonic() < deadline:
                client.get("/services/table")  # the page's poll keeps the sampler watching
                snap = snapshot()
                now = time.time()
                running = [r for r in snap.rows if r.state == "running"]
                ages = [now - r.sample_at for r in running if r.sample_at]
                missing = len([r for r in running if r.sample_at is None or r.cpu is None])
                if time.monotonic() > deadline - 14:  # after a 6 s warm-up (two samples for CPU %)
                    worst.append(max(ages) if ages else float("inf"))
                    missing_max = max(missing_max, missing)
                time.sleep(2)
        print(f"\n2. stats freshness with {len(running)} running containers (polled every 2 s for 14 s)")
        row("oldest sample seen on any row", f"{max(worst):.2f} s", "< 5 s", max(worst) < 5)
        row("rows without a CPU/memory sample (max)", str(missing_max), "0", missing_max == 0)
        row("mean of per-poll oldest sample", f"{statistics.mean(worst):.2f} s")
        app.extensions["stackpilot.stats"].stop()
    finally:
        subprocess.run([*base, "down", "-v", "-t", "0", "--remove-orphans"], capture_output=True, timeout=600)
        left = [c.name for c in sdk.containers.list(all=True) if c.name.startswith(project)]
        print(f"\ncleanup: {len(left)} bench containers left")
        sdk.close()


if __name__ == "__main__":
    main()
