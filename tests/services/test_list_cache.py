"""The table reuses the engine's list of a stack's containers only while nothing happened: a poll
with nothing new costs no list call, and a change made on the host, an action Stackpilot ran, or a
dead engine shows in the next table all the same."""

from __future__ import annotations

import json
import queue
import subprocess
import threading

import pytest

from app.engine import Engine
from app.engine import containers as engine_containers
from app.engine import events
from app.engine.events import EventListener
from tests.conftest import sign_in
from tests.services.conftest import ROW_STATE
from tests.services.conftest import app_for
from tests.services.conftest import finish
from tests.services.conftest import states
from tests.support.engine import EngineProxy
from tests.support.engine import close_all
from tests.support.live import wait_for

pytestmark = [pytest.mark.docker]

TWO = """
services:
  a:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  b:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


class ListCounter(EngineProxy):
    """The killable engine proxy, counting the container list requests that pass it (whole lists,
    and small ones of a few containers by id); the engine's
    event stream is held back while `flowing` is clear (events are asynchronous: nothing may rely
    on them arriving before the next request)."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0
        self.small_lists = 0
        self._count_lock = threading.Lock()
        self._events: set = set()  # engine-side sockets answering /events
        self._event_pairs: set = set()  # both ends of those connections
        self.flowing = threading.Event()
        self.flowing.set()

    def _pump(self, src, dst) -> None:
        late: queue.Queue | None = None
        try:
            while data := src.recv(65536):
                head = data.split(b"\r\n", 1)[0]
                if data.startswith(b"GET ") and b"/containers/json" in head:
                    with self._count_lock:
                        if b"%22id%22" in head:
                            self.small_lists += 1
                        else:
                            self.lists += 1
                if data.startswith(b"GET ") and b"/events" in head:
                    self._events.add(dst)
                    self._event_pairs.update((src, dst))
                if src in self._events:
                    if late is None:
                        late = queue.Queue()
                        threading.Thread(target=self._later, args=(late, dst), daemon=True).start()
                    late.put(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if late is not None:
                late.put(b"")
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def stop_all_but_events(self) -> None:
        """The engine is gone, but the event stream hangs instead of ending (a half-open
        connection to a remote engine does that): new connections are refused, others closed."""
        listener, self._listener = self._listener, None
        with self._lock:
            conns = {c for c in self._conns if c not in self._event_pairs}
            self._conns -= conns
        close_all(listener, conns)

    def _later(self, late: queue.Queue, dst) -> None:
        while data := late.get():
            self.flowing.wait()
            try:
                dst.sendall(data)
            except OSError:
                return


def test_poll_reuses_the_list_until_something_happens(make_stack, app_factory, monkeypatch):
    # no background refresh of inspections: the table's only engine calls are the list (or ping);
    # no whole list for age either: the test's lists all have a reason
    monkeypatch.setattr(engine_containers, "INSPECT_TTL", 3600.0)
    monkeypatch.setattr(engine_containers, "LIST_MAX_AGE", 600.0)
    proxy = ListCounter().start()
    try:
        proj = make_stack({"docker-compose.yml": TWO}, name="listcache")
        proj.compose("up", "-d")
        app = app_for(app_factory, proj, env={"DOCKER_HOST": proxy.docker_host})
        client = sign_in(app, app.test_client(), "operator")

        def reused() -> bool:  # the event stream is open and vouches for the last list
            before = proxy.lists
            r = client.get("/services/table")
            html = r.get_data(as_text=True)
            assert {m[1] for m in ROW_STATE.finditer(html)} == {"a", "b"}, (r.status_code, html[:2000])
            return proxy.lists == before

        wait_for(reused, timeout=15, interval=0.3, message="a poll without a list call")
        quiet = proxy.lists
        for _ in range(5):
            assert states(client, "/services/table") == {"a": ("running", "running"), "b": ("running", "running")}
        assert proxy.lists == quiet  # nothing happened: no list call

        # a change made on the host arrives as an event: only that container is asked again
        subprocess.run(["docker", "stop", "-t", "0", f"{proj.project}-a-1"], check=True, capture_output=True)
        wait_for(lambda: states(client, "/services/table")["a"][0] == "stopped", timeout=5, message="host stop")
        assert proxy.small_lists > 0 and proxy.lists == quiet
        assert states(client, "/services/table")["b"] == ("running", "running")
        subprocess.run(["docker", "rm", f"{proj.project}-a-1"], check=True, capture_output=True)  # gone
        wait_for(lambda: states(client, "/services/table")["a"][0] == "not-created", timeout=5, message="host rm")
        assert proxy.lists == quiet

        # an action Stackpilot runs shows in the very next table, whenever its events arrive
        wait_for(reused, timeout=15, interval=0.3, message="reuse again")
        proxy.flowing.clear()
        finish(client.post("/services/b/stop"))
        assert states(client, "/services/table")["b"][0] == "stopped"
        finish(client.post("/services/b/start"))
        assert states(client, "/services/table")["b"] == ("running", "running")
        proxy.flowing.set()

        # a dead engine is never served from memory, even while its event stream still hangs open
        wait_for(reused, timeout=15, interval=0.3, message="reuse again")
        proxy.stop_all_but_events()
        assert states(client, "/services/table")["b"] == ("unknown", "unknown")
    finally:
        proxy.flowing.set()
        proxy.close()


def test_listener_tokens_name_the_changed_containers(monkeypatch):
    """The tokens the table's list cache relies on, fed event lines as the engine writes them."""
    listener = EventListener(Engine("unix:///nowhere.sock"))
    listener.connected, listener._connected_at = True, 0.0  # as after a connect, without an engine

    def event(project: str, cid: str, action: str = "die") -> None:
        attributes = {"com.docker.compose.project": project}
        listener._handle(
            json.dumps({"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": attributes}})
        )

    before = listener.token("p")
    event("p", "c1")
    event("p", "c2", "health_status: healthy")
    event("p", "c1", "exec_start: sh")  # changes nothing a table shows
    event("other", "x1")
    now = listener.token("p")
    assert now != before and listener.changed("p", before, now) == {"c1", "c2"}
    assert listener.changed("p", now, now) == set() and listener.token("other") != now
    # the oldest quiet project is forgotten past PROJECTS_KEPT: every token changes, none can be patched
    monkeypatch.setattr(events, "PROJECTS_KEPT", 2)
    event("third", "t1")
    assert listener.token("p") != now and listener.changed("p", now, listener.token("p")) is None
    listener.connected = False
    assert listener.token("p") is None  # no stream: nothing is vouched for
