"""Service table at scale: a growth curve (prints figures; asserts nothing).

    .venv/bin/python bench/bench_services.py [--counts 10,50,200] [--window 20] [--repeat 15]

For each count of running busybox containers (one compose project, grown step by step), measured
in turns so a busy shared engine weighs on all alike (medians of --repeat):
  - baseline: ONE Docker SDK `containers.list()` of the project's containers (the SDK lists, then
    inspects each), and the one-call `containers.list(sparse=True)` beside it;
  - the table fragment, full render (no versions sent, signed in as an admin: the largest
    markup), three times: steady (nothing happened since the last poll: the engine's event stream
    vouches for the last list, app.engine.containers), after an event of one container (what the
    listener does with one: that container is asked again by id), and with the whole list asked
    again (after a Compose run of the stack, a reconnect, or LIST_MAX_AGE); target < 100 ms at 200;
  - the home page (every stack);
  - the stats sampler's CPU in this process while a viewer renews its lease every 2 s, in
    CPU-seconds a minute, and the oldest sample the viewer saw (bench_stats.py has the detail and
    the one-shot sampler it replaced); targets <= 1 at 50, <= 4 at 200, samples < 3 s old.
The load average is printed with every count: on a shared 2-core machine the figures move with it.
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row  # noqa: E402
from _common import timed  # noqa: E402
from bench_stats import compose_file  # noqa: E402
from bench_stats import measure  # noqa: E402

import docker  # noqa: E402
from app import create_app  # noqa: E402
from app import settings as settings_module  # noqa: E402
from app.compose import Runners  # noqa: E402
from app.engine import Engine  # noqa: E402
from app.engine import containers as engine_containers  # noqa: E402
from app.engine.stats import StatsSampler  # noqa: E402
from app.passwords import hash_password  # noqa: E402
from tests.support.images import ensure_busybox_image  # noqa: E402

PROJECT_LABEL = "com.docker.compose.project"


def signed_in_client(app, role: str = "admin"):
    store = app.extensions["stackpilot.store"]
    user = store.add_user("bench", hash_password("bench-password-long-enough"), role)
    sid = secrets.token_urlsafe(32)
    store.add_session(sid, user.id)
    client = app.test_client()
    with client.session_transaction() as s:
        s["sid"] = sid
    return client


def interleaved_ms(fns: dict, repeat: int) -> dict[str, float]:
    """Median of each, measured in turns."""
    for fn in fns.values():
        fn()  # warm
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            samples[name].append(timed(fn))
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,50,200", help="running container counts, ascending")
    parser.add_argument("--window", type=float, default=20.0, help="seconds the stats sampler is measured")
    parser.add_argument("--repeat", type=int, default=15, help="turns of each timing")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    logging.basicConfig(level=logging.ERROR)  # no setup-token banner in the figures
    image = ensure_busybox_image()
    project = f"spbench-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    stack_dir = work / "stack"
    stack_dir.mkdir()
    (stack_dir / "docker-compose.yml").write_text(compose_file(image, counts[0]))
    base = [*Runners().compose_command(), "--project-directory", str(stack_dir), "-p", project]
    sdk = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=120)
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
    label = f"{PROJECT_LABEL}={project}"
    results = []
    try:
        for n in counts:
            started = time.perf_counter()
            (stack_dir / "docker-compose.yml").write_text(compose_file(image, n))  # the table has n rows
            subprocess.run([*base, "up", "-d", "--quiet-pull"], check=True, capture_output=True, timeout=1200)
            print(f"\n== {n} running containers (up in {time.perf_counter() - started:.0f} s)")

            # stats first, while the app's own sampler (leased by the last count's pages) is idle
            deadline = time.monotonic() + 20
            while app.extensions["stackpilot.stats"].running and time.monotonic() < deadline:
                time.sleep(0.2)
            sampler = StatsSampler(Engine())
            cpu, _engine_cpu, age = measure(
                lambda: None,
                lambda sm=sampler: sm.watch(project),
                lambda sm=sampler: [s.age() for s in sm.snapshot().values()],
                args.window,
            )
            sampler.stop()

            def fragment(n=n):
                r = client.get("/services/table")  # no versions sent: the whole table, the worst case
                assert r.status_code == 200 and r.data.count(b'class="svc-row') == n, r.status_code

            listener = app.extensions["stackpilot.events"].get(app.extensions["stackpilot.engine"])
            some = [r["Id"] for r in sdk.api.containers(filters={"label": [label]})]

            def after_event(listener=listener, some=some):
                listener._publish(project, some[int(time.monotonic() * 1000) % len(some)])  # as an event does
                fragment()

            def whole_list():
                engine_containers._lists.clear()  # as a Compose run of the stack does
                fragment()

            fragment()
            time.sleep(1.0)  # the event listener connects and settles; from then on a poll reuses the list
            load0 = os.getloadavg()[0]
            got = interleaved_ms(
                {
                    "sdk": lambda: sdk.containers.list(filters={"label": label}),
                    "sparse": lambda: sdk.containers.list(filters={"label": label}, sparse=True),
                    "steady": fragment,
                    "event": after_event,
                    "whole": whole_list,
                    "home": lambda: client.get("/"),
                },
                args.repeat,
            )
            load = (load0 + os.getloadavg()[0]) / 2

            results.append((n, got, cpu, age, load))
            target = 1.0 if n <= 50 else 4.0 * n / 200
            row("load average (1 min) while timing", f"{load:.1f}")
            row("SDK containers.list(project) (baseline)", f"{got['sdk']:.1f} ms", "baseline")
            row("SDK containers.list(project, sparse=True)", f"{got['sparse']:.1f} ms")
            for key, what in (
                ("steady", "nothing happened"),
                ("event", "after an event"),
                ("whole", "whole list asked"),
            ):
                ms = got[key]
                row(
                    f"table fragment, {what}",
                    f"{ms:.1f} ms",
                    "< 100 ms" if n == 200 else "",
                    ms < 100 if n == 200 else None,
                )
                row(f"  ratio to the baseline ({what})", f"{ms / got['sdk']:.2f}")
            row("home page", f"{got['home']:.1f} ms")
            row(
                "stats sampler, CPU-s/min",
                f"{cpu:.2f}",
                f"<= {target:.1f}" if n in (50, 200) else "",
                cpu <= target if n in (50, 200) else None,
            )
            row("oldest stats sample a viewer saw", f"{age:.1f} s", "< 3 s", age < 3)
        print("\ngrowth curve (ms are medians; ratio = fragment / SDK list)")
        print(
            f"  {'containers':>10} {'load':>5} {'SDK list':>9} {'fragment':>9} {'ratio':>6} {'after event':>12} "
            f"{'ratio':>6} {'whole list':>11} {'ratio':>6} {'home':>7} {'stats CPU-s/min':>16}"
        )
        for n, got, cpu, _age, load in results:
            sdk_ms = got["sdk"]
            print(
                f"  {n:>10} {load:>5.1f} {sdk_ms:>9.1f} {got['steady']:>9.1f} {got['steady'] / sdk_ms:>6.2f} "
                f"{got['event']:>12.1f} {got['event'] / sdk_ms:>6.2f} {got['whole']:>11.1f} {got['whole'] / sdk_ms:>6.2f} "
                f"{got['home']:>7.1f} {cpu:>16.2f}"
            )
    finally:
        for hook in app.extensions.get("stackpilot.shutdown", []):
            try:
                hook()
            except Exception:  # noqa: BLE001
                pass
        subprocess.run([*base, "down", "-v", "-t", "0", "--remove-orphans"], capture_output=True, timeout=1200)
        left = [c.name for c in sdk.containers.list(all=True, filters={"label": label})]
        print(f"\ncleanup: {len(left)} bench containers left")
        sdk.close()


if __name__ == "__main__":
    main()
