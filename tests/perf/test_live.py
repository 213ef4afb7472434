"""Performance behaviour, for real (timings live in bench/): a flood reaches a fast viewer whole,
stats stop when the last viewer goes, a host-side `docker stop` reaches an open page by push, and
the engine's event listener comes back after an outage."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from app.engine import Engine
from app.engine.events import RECONNECTED
from app.engine.events import EventListener
from app.logstream.queue import LineQueue
from app.logstream.queue import Skipped
from app.store import Store
from tests.perf.rawws import RawWS
from tests.support.engine import EngineProxy
from tests.support.live import wait_for
from tests.support.screens import shoot

pytestmark = [pytest.mark.docker]

FLOOD = """
services:
  flood:
    image: {image}
    command: ["sh", "-c", "sleep 3; i=0; while [ $$i -lt 150000 ]; do i=$$((i+1)); echo \\"flood line $$i padding\\"; done; sleep 3600"]
    stop_grace_period: 1s
"""
TWO = """
services:
  a:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  b:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


FLOOD_LINE = re.compile(r"flood line (\d+) padding")
SKIP = re.compile(r'\{"t":"skip","n":(\d+)\}')
CPU_CELL = re.compile(r'id="r-a-cpu"[^>]*>[0-9.]+ %<')


class CountingProxy(EngineProxy):
    """The killable engine proxy, also noting every stats request and how many are still open."""

    def __init__(self) -> None:
        super().__init__()
        self.stats_requests: list[float] = []
        self.open_stats: set = set()

    def _pump(self, src, dst) -> None:
        stats = False
        try:
            while data := src.recv(65536):
                if b" /stats" in data[:300] or b"/stats?" in data[:300]:
                    stats = True
                    self.stats_requests.append(time.monotonic())
                    self.open_stats.add(src)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if stats:
                self.open_stats.discard(src)
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass


def served(server_factory, proj, **env):
    server = server_factory(stack_dir=proj.dir, **env)
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": proj.project, "files": [], "profiles": []}
    )
    return server


def test_log_flood_reaches_a_fast_viewer_whole(make_stack, server_factory):
    proj = make_stack({"docker-compose.yml": FLOOD}, name="flood")
    server = served(server_factory, proj)
    session = server.session()
    proj.compose("up", "-d")  # it writes after 3 s: the viewer is following by then
    fast = RawWS("127.0.0.1", server.port, "/logs/-/ws?s=flood&tail=1", server.ws_headers(session), rcvbuf=1 << 20)
    numbers, skipped = set(), 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and 150000 not in numbers:
            raw = fast.receive(timeout=2)
            if raw is None:
                break
            numbers.update(int(n) for n in FLOOD_LINE.findall(raw))
            skipped += sum(int(n) for n in SKIP.findall(raw))
    finally:
        fast.close()
    assert skipped == 0
    assert numbers == set(range(1, 150001)), "a line of the flood is missing"


def test_a_live_queue_waits_for_a_reader_and_tells_a_stalled_one():
    queue = LineQueue(max_items=10)
    reader_took: list = []

    def reader():
        while len(reader_took) < 100:
            reader_took.extend(queue.get_batch(max_items=5, wait=1))

    t = threading.Thread(target=reader)
    t.start()
    for start in range(0, 100, 20):
        assert queue.put_many(list(range(start, start + 20)), [1] * 20, wait=2.0) == 20
    t.join(5)
    assert reader_took == list(range(100))  # a reader that keeps taking loses nothing

    assert queue.put_many(list(range(15)), [1] * 15, wait=0.05) == 10  # nobody reads: 5 dropped
    batch = queue.get_batch(max_items=100, wait=0)
    assert batch[:10] == list(range(10)) and batch[-1] == Skipped(5)


def test_stats_stop_when_the_last_viewer_leaves(make_stack, server_factory):
    proxy = CountingProxy().start()
    try:
        proj = make_stack({"docker-compose.yml": TWO}, name="stats")
        proj.compose("up", "-d")
        server = served(server_factory, proj, DOCKER_HOST=proxy.docker_host)
        session = server.session()
        stream = session.get(server.url + "/live/services", stream=True, timeout=30)
        assert stream.headers["content-type"].startswith("text/event-stream")
        reader = stream.iter_content(None)
        wait_for(
            lambda: next(reader) and len(proxy.open_stats) == 2, timeout=15, message="a stats stream per container"
        )
        wait_for(
            lambda: CPU_CELL.search(session.get(server.url + "/services").text),
            timeout=10,
            message="samples in the table",
        )

        stream.close()  # the viewer leaves
        left = time.monotonic()
        wait_for(lambda: not proxy.open_stats, timeout=12, interval=0.2, message="stats streams closed")
        assert time.monotonic() - left < 10
        count = len(proxy.stats_requests)
        time.sleep(3)  # nothing may start again on its own
        assert len(proxy.stats_requests) == count and not proxy.open_stats
    finally:
        proxy.close()


def test_host_docker_stop_reaches_an_open_page_without_a_poll(make_stack, server_factory, page):
    proj = make_stack({"docker-compose.yml": TWO}, name="push")
    proj.compose("up", "-d")
    server = served(server_factory, proj)
    page.sign_in(server)
    pg = page.page
    polls: list[str] = []
    pg.on("request", lambda r: polls.append(r.url) if "/services/table" in r.url else None)
    pg.goto(server.url + "/services")
    pg.wait_for_selector("#svc-poller[data-live-state=live]", state="attached", timeout=10_000)
    assert pg.locator("#r-a-state .badge").get_attribute("data-state") == "running"
    polls.clear()
    pg.wait_for_timeout(6000)  # longer than the fallback poll's 5 s: it must not run while live
    assert polls == []

    subprocess.run(["docker", "stop", "-t", "0", f"{proj.project}-a-1"], check=True, capture_output=True)
    pg.wait_for_selector("#r-a-state .badge:not([data-state=running])", timeout=5_000)
    assert polls == []  # it came by push, not by the poller
    assert pg.locator("#r-b-state .badge").get_attribute("data-state") == "running"
    shoot(pg, "performance-services-pushed-stop")
    assert not [e for e in page.console_errors if "favicon" not in e], page.console_errors


def test_event_listener_reconnects_after_an_engine_outage(make_stack, engine_proxy):
    proj = make_stack({"docker-compose.yml": TWO}, name="events")
    proj.compose("up", "-d")
    listener = EventListener(Engine(engine_proxy.docker_host), idle_after=1)
    sub = listener.subscribe(proj.project)
    try:
        wait_for(lambda: listener.connected, timeout=10, message="listener connected")
        engine_proxy.stop()
        wait_for(lambda: not listener.connected, timeout=10, message="listener noticed the outage")
        engine_proxy.start()
        wait_for(lambda: listener.connected and listener.connects == 2, timeout=15, message="listener back")
        assert RECONNECTED in sub.wait(5)

        proj.compose("stop", "-t", "0", "a")
        wait_for(lambda: proj.project in sub.wait(0.5), timeout=10, message="the stop event after the outage")
    finally:
        sub.close()
        listener.stop()
    assert not listener.running
