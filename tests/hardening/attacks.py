"""The attacks of issue 12 as plain functions, shared by the regression tests and
bench/bench_attack.py (which also runs them against a checkout of the code before the fix).

Each works against a real server process: `CheckoutServer` is the LiveServer of tests/support,
started from any checkout folder, optionally inside a cgroup-v1 memory limit (the container's
512 MiB, set by us on the bare process so no image build is needed).
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from app import ROOT
from tests.support.live import CSRF_RE
from tests.support.live import TEST_PASSWORD
from tests.support.live import LiveServer
from tests.support.live import SourceAddressAdapter
from tests.support.live import ensure_user

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
WRONG = "not-the-password-at-all"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


# -- a memory limit on one process ------------------------------------------------------------------
class MemoryLimit:
    """A cgroup-v1 memory cgroup with a hard limit (no swap): what `deploy.resources.limits.memory`
    gives the container. `peak_mib` and `oom_kills` say how close the process came and whether the
    kernel killed it."""

    def __init__(self, limit_mib: int) -> None:
        self.path = CGROUP_ROOT / f"sptest-{uuid.uuid4().hex[:8]}"
        self.limit_mib = limit_mib

    @staticmethod
    def available() -> bool:
        return os.access(CGROUP_ROOT, os.W_OK)

    def __enter__(self) -> MemoryLimit:
        self.path.mkdir()
        try:  # charge what the process already holds too (refused by newer kernels: then the
            # process is added right after its fork, before it allocates much)
            (self.path / "memory.move_charge_at_immigrate").write_text("3")
        except OSError:
            pass
        (self.path / "memory.limit_in_bytes").write_text(str(self.limit_mib << 20))
        memsw = self.path / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(self.limit_mib << 20))
        return self

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    @property
    def peak_mib(self) -> float:
        return int((self.path / "memory.max_usage_in_bytes").read_text()) / (1 << 20)

    @property
    def oom_kills(self) -> int:
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def __exit__(self, *exc) -> None:
        for pid in filter(None, (self.path / "cgroup.procs").read_text().split()):
            try:
                (CGROUP_ROOT / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)


# -- a server from any checkout -----------------------------------------------------------------------
@dataclass
class CheckoutServer(LiveServer):
    """LiveServer run from `checkout` (this tree by default), optionally inside a MemoryLimit."""

    checkout: Path = ROOT
    limit: MemoryLimit | None = None

    def start(self, timeout: float = 20.0) -> CheckoutServer:
        return super().start(timeout)

    def cwd(self) -> Path:
        return self.checkout

    def spawned(self, pid: int) -> None:
        if self.limit is not None:
            self.limit.add(pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_peak_mib(self) -> float:
        """VmHWM of the process (its own RSS peak), while it runs."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")


def client(server: LiveServer, source: str = "127.0.0.1") -> tuple[requests.Session, str]:
    """A fresh anonymous session from `source` (a loopback address: a distinct client) and the
    login form's CSRF token."""
    s = requests.Session()
    s.mount("http://", SourceAddressAdapter(source))
    page = s.get(server.url + "/login", timeout=10)
    return s, CSRF_RE.search(page.text).group(1)


def sign_in(
    server: LiveServer, s: requests.Session, csrf: str, username: str, password: str, timeout: float = 60
) -> int:
    try:
        return s.post(
            server.url + "/login",
            data={"username": username, "password": password, "csrf_token": csrf},
            headers={"Origin": server.url},
            allow_redirects=False,
            timeout=timeout,
        ).status_code
    except requests.RequestException:
        return 0  # the server went away (OOM-killed) or never answered


# -- item 1: concurrent sign-ins ----------------------------------------------------------------------
def concurrent_sign_ins(server: LiveServer, n: int = 100, password: str = TEST_PASSWORD) -> dict:
    """n sign-ins (the right password) released at once; statuses counted, 0 = no answer."""
    ensure_user(server.data_dir, "admin", "admin")
    prepared = [client(server) for _ in range(n)]
    barrier = threading.Barrier(n)

    def go(pair):
        barrier.wait()
        return sign_in(server, *pair, "admin", password)

    start = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        statuses = list(pool.map(go, prepared))
    counts: dict[int, int] = {}
    for code in statuses:
        counts[code] = counts.get(code, 0) + 1
    return {"statuses": counts, "seconds": time.monotonic() - start}


# -- item 2: the lockout ---------------------------------------------------------------------------------
def lockout(server: LiveServer, attacker: str = "127.0.0.2", owner: str = "127.0.0.3", failures: int = 50) -> dict:
    """The attacker fails `failures` times against admin; then the owner signs in from elsewhere."""
    ensure_user(server.data_dir, "admin", "admin")
    s, csrf = client(server, attacker)
    attacker_codes: dict[int, int] = {}
    for _ in range(failures):
        code = sign_in(server, s, csrf, "admin", WRONG)
        attacker_codes[code] = attacker_codes.get(code, 0) + 1
    o, ocsrf = client(server, owner)
    return {"attacker": attacker_codes, "owner": sign_in(server, o, ocsrf, "admin", TEST_PASSWORD)}


def racing_guesses(server: LiveServer, source: str = "127.0.0.4", n: int = 20) -> dict:
    """n wrong passwords at once from one address: how many were let through to the check
    ("checked", plus "busy" ones the memory bound turned away after the throttle let them in)?"""
    ensure_user(server.data_dir, "admin", "admin")
    prepared = [client(server, source) for _ in range(n)]
    barrier = threading.Barrier(n)

    def go(pair):
        s, csrf = pair
        barrier.wait()
        try:
            r = s.post(
                server.url + "/login",
                data={"username": "admin", "password": WRONG, "csrf_token": csrf},
                headers={"Origin": server.url},
                allow_redirects=False,
                timeout=60,
            )
        except requests.RequestException:
            return "no answer"
        if r.status_code == 422:
            return "checked"
        if r.status_code == 429:
            return "throttled" if "Too many failed" in r.text else "busy"
        return str(r.status_code)

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(go, prepared))
    return {k: outcomes.count(k) for k in set(outcomes)}


# -- item 4: downloads while pages load -----------------------------------------------------------------
def downloads_while_pages(
    server: LiveServer,
    viewer: requests.Session,
    admin: requests.Session,
    n: int = 200,
    pages: tuple[str, ...] = ("/account", "/logs/", "/users"),
    rounds: int = 10,
    timeout: float = 10.0,
    read_delay: float = 0.01,
    query: str = "tail=all",
) -> dict:
    """n concurrent .log downloads by the viewer (read slowly, like a slow client: `read_delay`
    seconds per 64 KiB) while the admin loads pages; every page load is timed (a timeout counts
    as `timeout`). A reader slower than the server fills waitress's output buffer (16 MiB), and
    from then on the download holds its worker thread."""
    go = threading.Event()
    stop = threading.Event()  # once the pages are measured, the readers hang up
    statuses: list[int] = []
    refusals: list[str] = []

    def download():
        go.wait()
        try:
            with viewer.get(f"{server.url}/logs/-/download?{query}", stream=True, timeout=60) as r:
                statuses.append(r.status_code)
                if r.status_code == 200:
                    for _ in r.iter_content(64 * 1024):
                        if stop.wait(read_delay):
                            break
                else:
                    refusals.append(r.text)
        except requests.RequestException:
            statuses.append(0)

    threads = [threading.Thread(target=download, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    go.set()
    time.sleep(2.0 if read_delay > 0.05 else 0.5)  # let the downloads take what they can
    times: list[float] = []
    failed = 0
    for _ in range(rounds):
        for path in pages:
            start = time.monotonic()
            try:
                ok = admin.get(server.url + path, timeout=timeout).status_code == 200
            except requests.RequestException:
                ok = False
            times.append(time.monotonic() - start)
            failed += not ok
    stop.set()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    return {
        "page_p95": p95(times),
        "page_max": max(times),
        "pages_failed": failed,
        "pages": len(times),
        "downloads": {code: statuses.count(code) for code in set(statuses)},
        "refusal": next((_message(r) for r in refusals if "download" in r), ""),
    }


def _message(html: str) -> str:
    found = re.search(r"You already have[^<]*", html)
    return found.group(0).strip() if found else ""
