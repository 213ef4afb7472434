"""Access benchmark: what password hashing costs under attack, against the real server.

Baseline (same run): one scrypt hash at Stackpilot's cost, in this process.
- 50 concurrent claims with the right token: wall time / one hash (1 means only the winner hashed);
- 50 concurrent claims with a wrong token: wall time / one hash (no hashing at all: far below 1);
- a failed sign-in (hashes) and a throttled one (429 before any hash): each / one hash.
Run: python3 bench/bench_access.py
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from _common import ROOT
from _common import row
from _common import timed

sys.path.insert(0, str(ROOT))
from app import passwords  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402

CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def prepared(srv: LiveServer, page: str, n: int) -> list[tuple[requests.Session, str]]:
    out = []
    for _ in range(n):
        s = requests.Session()
        out.append((s, CSRF.search(s.get(srv.url + page, timeout=10).text).group(1)))
    return out


def burst(srv: LiveServer, path: str, sessions, form) -> tuple[float, list[int]]:
    barrier = threading.Barrier(len(sessions) + 1)
    codes: list[int] = []  # status, or 1 for the claim that won

    def go(i, s, csrf):
        barrier.wait()
        r = s.post(
            srv.url + path,
            data={**form(i), "csrf_token": csrf},
            headers={"Origin": srv.url},
            allow_redirects=False,
            timeout=120,
        )
        codes.append(r.status_code if not r.headers.get("Location", "").endswith("/setup/") else 1)

    threads = [threading.Thread(target=go, args=(i, s, c)) for i, (s, c) in enumerate(sessions)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, codes


def main() -> None:
    one_hash = min(timed(lambda: passwords.hash_password("benchmark-password")) for _ in range(3))
    print("Access benchmark (baseline: one scrypt hash in-process)")
    row("one scrypt hash (baseline)", f"{one_hash * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        srv = LiveServer(data_dir=Path(tmp)).start()
        try:
            wrong, codes = burst(
                srv,
                "/setup/claim",
                prepared(srv, "/setup/", 10),
                lambda i: {"token": "wrong", "username": f"u{i}", "password": "x" * 16},
            )
            row(
                "10 concurrent wrong-token claims",
                f"{wrong * 1000:.0f} ms",
                f"{wrong / one_hash:.2f}x one hash ({codes.count(403)}x403, {codes.count(429)}x429)",
            )
            srv.stop()
            srv.start()  # a fresh rate limit and token for the valid burst
            token = (Path(tmp) / "setup-token").read_text().strip()
            valid, codes = burst(
                srv,
                "/setup/claim",
                prepared(srv, "/setup/", 50),
                lambda i: {"token": token, "username": f"u{i}", "password": "x" * 16},
            )
            row(
                "50 concurrent valid claims",
                f"{valid * 1000:.0f} ms",
                f"{valid / one_hash:.2f}x one hash ({codes.count(1)} claim won, {codes.count(302)} sent to sign in)",
            )
            s, csrf = prepared(srv, "/login", 1)[0]
            form = {"username": "u0", "password": "wrong-password!", "csrf_token": csrf}
            failed = [
                timed(lambda: s.post(srv.url + "/login", data=form, headers={"Origin": srv.url}, timeout=30))
                for _ in range(5)
            ]
            throttled = timed(lambda: s.post(srv.url + "/login", data=form, headers={"Origin": srv.url}, timeout=30))
            row(
                "failed sign-in (median of 5)",
                f"{sorted(failed)[2] * 1000:.0f} ms",
                f"{sorted(failed)[2] / one_hash:.2f}x one hash",
            )
            row(
                "6th sign-in, throttled (429)",
                f"{throttled * 1000:.1f} ms",
                f"{throttled / one_hash:.3f}x one hash",
            )
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
