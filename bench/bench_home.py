"""Home page and per-stack table with many stacks (prints figures; asserts nothing).

20 stacks x 10 busybox services in a stacks root (STACKPILOT_STACKS_DIR), all running on the
local engine, served by the real waitress process:

1. GET / (every stack: registry, root scan, one container listing per engine, last actions)
   against one raw `containers(all=True)` listing per engine in the same run (goal: ratio < 2);
   the SDK's high-level `containers.list(all=True)` (list + one inspect per container) beside it.
2. One stack's page /s/<stack>/services and its polled fragment /s/<stack>/services/table.
3. Idle RSS of the server with the 20 stacks registered and every page visited once.

Run: python3 bench/bench_home.py   (needs the engine and the local busybox image)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row  # noqa: E402
from _common import rss_mb  # noqa: E402
from _common import timed  # noqa: E402

import docker  # noqa: E402
from app.compose import Runners  # noqa: E402
from tests.support.images import ensure_busybox_image  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402
from tests.support.live import ensure_user  # noqa: E402

STACKS = 20
SERVICES = 10
PREFIX = f"h6home{int(time.time()) % 100000}"


def compose_file(image: str) -> str:
    lines = ["services:"]
    for i in range(SERVICES):
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


def compose(folder: Path, *args: str, check: bool = True) -> None:
    subprocess.run(
        [*Runners().compose_command(), "--project-directory", str(folder), "-p", folder.name, *args],
        check=check,
        capture_output=True,
        timeout=600,
    )


def interleaved_ms(fns: dict, repeat: int = 15) -> dict[str, float]:
    """Median of each, measured in turns so a busy shared engine weighs on all alike."""
    for fn in fns.values():
        fn()  # warm
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            samples[name].append(timed(fn))
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def main() -> None:
    image = ensure_busybox_image()
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=60)
    root = Path(tempfile.mkdtemp(prefix="bench-home-"))
    data = Path(tempfile.mkdtemp(prefix="bench-home-data-"))
    folders = []
    for i in range(STACKS):
        folder = root / f"{PREFIX}-{i:02d}"
        folder.mkdir()
        (folder / "compose.yaml").write_text(compose_file(image))
        folders.append(folder)
    server = None
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda f: compose(f, "up", "-d", "--quiet-pull"), folders))
        print(f"{STACKS} stacks x {SERVICES} services up in {time.perf_counter() - started:.0f} s")
        ensure_user(data, "admin", "admin")
        server = LiveServer(data_dir=data, env={"STACKPILOT_STACKS_DIR": str(root)}).start()
        session = server.session()
        home = session.get(server.url + "/", timeout=60).text
        assert all(f'id="stack-{f.name}"' in home for f in folders), "every stack on the home page"
        one = folders[0].name

        def raw_list():
            client.api.containers(all=True, filters={"label": ["com.docker.compose.project"]})

        def sdk_list():
            client.containers.list(all=True)

        def get(path):
            r = session.get(server.url + path, timeout=60)
            assert r.status_code in (200, 204), (path, r.status_code)

        sdk = median_ms(sdk_list, repeat=5)
        got = interleaved_ms(
            {
                "raw": raw_list,
                "home": lambda: get("/"),
                "page": lambda: get(f"/s/{one}/services"),
                "table": lambda: get(f"/s/{one}/services/table"),
            }
        )
        base, home_ms, page_ms, table_ms = got["raw"], got["home"], got["page"], got["table"]
        print(f"Home and one stack's table, {STACKS} stacks x {SERVICES} services ({STACKS * SERVICES} containers)")
        row("raw containers(all=True), 1 engine (baseline)", f"{base:.1f} ms")
        row("SDK containers.list(all=True) (list+inspect)", f"{sdk:.1f} ms")
        row(
            "GET / (home, every stack)",
            f"{home_ms:.1f} ms",
            f"ratio {home_ms / base:.2f} (goal < 2)",
            home_ms / base < 2,
        )
        row(f"GET /s/{one[:10]}…/services (full page)", f"{page_ms:.1f} ms")
        row(f"GET /s/{one[:10]}…/services/table (poll)", f"{table_ms:.1f} ms")
        for path in ("/logs/", "/graph/", "/config/"):
            get(f"/s/{one}{path}")
        time.sleep(2)
        row(f"idle RSS with {STACKS} stacks registered", f"{rss_mb(server.proc.pid):.1f} MB")
    finally:
        if server is not None:
            server.stop()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda f: compose(f, "down", "-t", "0", check=False), folders))
        client.close()


if __name__ == "__main__":
    main()
