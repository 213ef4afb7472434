"""Issue 12's attacks, measured: items 1 (concurrent sign-ins under the container's 512 MiB),
2 (an attacker locking the owner out, and racing the limit) and 4 (a viewer's downloads freezing
the pages), each against this checkout and, with --before, against a checkout of the code before
the fix (made with `git worktree add /tmp/before <commit>`), side by side.

Run: python3 bench/bench_attack.py [--before /tmp/before] [--log-mb 16]
Needs root (a cgroup-v1 memory limit on the server process) and the Docker engine (item 4's stack).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT

from tests.hardening.attacks import CheckoutServer
from tests.hardening.attacks import MemoryLimit
from tests.hardening.attacks import concurrent_sign_ins
from tests.hardening.attacks import downloads_while_pages
from tests.hardening.attacks import lockout
from tests.hardening.attacks import racing_guesses
from tests.support import images
from tests.support.live import ensure_user
from tests.support.live import wait_for


def _server(checkout: Path, limit: MemoryLimit | None = None, **env: str) -> CheckoutServer:
    data = Path(tempfile.mkdtemp(prefix="bench-attack-"))
    ensure_user(data, "admin", "admin")
    return CheckoutServer(data_dir=data, env=env, checkout=checkout, limit=limit).start()


def item1(checkout: Path) -> str:
    with MemoryLimit(512) as limit:
        server = _server(checkout, limit)
        try:
            result = concurrent_sign_ins(server, 100)
            time.sleep(0.5)
            alive = server.alive()
            return (
                f"answers {dict(sorted(result['statuses'].items()))} (0 = none), "
                f"peak {limit.peak_mib:.0f} MiB of 512, OOM kills {limit.oom_kills}, "
                f"server {'alive' if alive else 'DEAD'}"
            )
        finally:
            server.stop()


def item2(checkout: Path) -> str:
    server = _server(checkout)
    try:
        result = lockout(server, attacker="127.0.0.2", owner="127.0.0.3", failures=50)
    finally:
        server.stop()
    fresh = _server(checkout)  # the race on an account nobody has failed on yet
    try:
        race = racing_guesses(fresh, "127.0.0.4", 20)
    finally:
        fresh.stop()
    owner = "signs in (302)" if result["owner"] == 302 else f"LOCKED OUT ({result['owner']})"
    return (
        f"attacker x50 from 127.0.0.2: {result['attacker']}; owner from 127.0.0.3 {owner}; "
        f"20 racing wrong passwords from 127.0.0.4 (limit 5): {race}"
    )


def _stack(log_mb: int) -> tuple[Path, str]:
    image = images.ensure_busybox_image()
    project = f"benchattack{int(time.time())}"
    folder = Path(tempfile.mkdtemp()) / project
    folder.mkdir()
    lines = log_mb * 1024 * 1024 // 80
    (folder / "docker-compose.yml").write_text(
        "services:\n  chatty:\n    image: " + image + "\n    stop_signal: SIGKILL\n"
        '    command: ["sh", "-c", "yes \'a line of log text, padded out to be about eighty bytes long'
        f" ....' | head -n {lines}; echo DONE; sleep 3600\"]\n"
    )
    subprocess.run(
        ["docker-compose", "--project-directory", str(folder), "-p", project, "up", "-d"],
        check=True,
        capture_output=True,
    )
    wait_for(
        lambda: (
            "DONE"
            in subprocess.run(
                [
                    "docker-compose",
                    "--project-directory",
                    str(folder),
                    "-p",
                    project,
                    "logs",
                    "--no-log-prefix",
                    "--tail",
                    "1",
                ],
                capture_output=True,
                text=True,
            ).stdout
        ),
        timeout=120,
        message="log written",
    )
    return folder, project


def item4(checkout: Path, folder: Path, project: str) -> str:
    from app.store import Store

    server = _server(checkout, STACKPILOT_STACK_DIR=str(folder))
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": project, "files": [], "profiles": []}
    )
    try:
        viewer = server.session("viewer", "viewer")
        import requests

        viewer.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=256))
        admin = server.session()
        r = downloads_while_pages(server, viewer, admin, n=200, rounds=4, timeout=10, read_delay=0.1)
        return (
            f"downloads {r['downloads']}; admin pages p95 {r['page_p95'] * 1000:.0f} ms, "
            f"max {r['page_max'] * 1000:.0f} ms, {r['pages_failed']}/{r['pages']} failed (10 s timeout)"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="a checkout of the code before the fix")
    parser.add_argument("--log-mb", type=int, default=40, help="log size for item 4 (the issue had 33)")
    parser.add_argument("--items", default="1,2,4", help="which items to run")
    args = parser.parse_args()
    items = set(args.items.split(","))
    runs = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
    print("issue 12: attacks against the real server (figures, no assertions)")
    for label, checkout in runs:
        if "1" in items:
            print(f"\n[{label}] item 1: 100 concurrent sign-ins, server in a 512 MiB memory cgroup")
            print("  " + item1(checkout))
        if "2" in items:
            print(f"[{label}] item 2: lockout and race")
            print("  " + item2(checkout))
    if "4" not in items:
        return
    folder, project = _stack(args.log_mb)
    try:
        for label, checkout in runs:
            print(
                f"[{label}] item 4: one viewer, 200 concurrent downloads of a {args.log_mb} MB log "
                "(each read at 640 KB/s), while the admin loads pages"
            )
            print("  " + item4(checkout, folder, project))
    finally:
        subprocess.run(
            ["docker-compose", "--project-directory", str(folder), "-p", project, "down", "-t", "0"],
            capture_output=True,
        )


if __name__ == "__main__":
    main()
