"""Engine 2, for real: reached over TCP+TLS and over SSH, checked in words, its containers listed
through our Engine, a Compose project brought up on it with compose_env(), and a dead engine 2
never slowing engine 1."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time

import pytest

from app.engine import containers
from app.engine.check import check
from app.engine.registry import NewEngine
from app.engine.registry import add_engine
from app.engine.registry import remove_engine
from app.engine.remote import own_ssh_key
from app.errors import EngineUnavailable
from tests.conftest import PREFIX
from tests.conftest import compose_bin
from tests.conftest import sign_in
from tests.support.engine2 import TCPForwarder
from tests.support.live import wait_for

pytestmark = pytest.mark.docker


def _parts(app):
    return (app.extensions["stackpilot.engines"], app.extensions["stackpilot.store"], app.config["SETTINGS"].data_dir)


@pytest.fixture
def tls_engine(app, tls_form):
    registry, store, data = _parts(app)
    return add_engine(registry, store, data, NewEngine(name="engine two tls", **tls_form))


@pytest.fixture
def ssh_engine(app, engine2):
    registry, store, data = _parts(app)
    engine2.authorize(own_ssh_key(data)[1])
    return add_engine(registry, store, data, NewEngine(name="engine two ssh", url=engine2.ssh_url))


@pytest.fixture
def e2_container(engine2, busybox_image):
    """A container started on engine 2 behind Stackpilot's back, removed after the test."""
    name = f"{PREFIX}-e2-{os.urandom(3).hex()}"
    done = engine2.docker(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        f"com.docker.compose.project={name}",
        "--label",
        "com.docker.compose.service=app",
        busybox_image,
        "sleep",
        "300",
    )
    assert done.returncode == 0, done.stderr
    yield name
    engine2.docker("rm", "-f", name)


@pytest.mark.parametrize("transport", ["tls", "ssh"])
def test_engine2_containers_are_listed_through_our_engine(request, transport, e2_container, docker_engine):
    engine = request.getfixturevalue(f"{transport}_engine")
    found = containers.project_containers(engine, e2_container)
    assert [(c.name, c.service, c.state) for c in found] == [(e2_container, "app", "running")]
    # Engine 2 is not engine 1: the shared engine has no such container.
    assert not docker_engine.containers.list(all=True, filters={"name": e2_container})
    if transport == "ssh":  # removing the engine ends its pooled ssh processes
        marker = str(engine.ssh_config)

        def running() -> bool:
            return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0

        assert running()
        registry, store, data = _parts(request.getfixturevalue("app"))
        remove_engine(registry, store, data, engine.id)
        wait_for(lambda: not running(), 10, message="the engine's ssh processes gone")


def test_add_engines_on_the_page_and_the_check_says_what_works(app, tls_form, engine2):
    client = sign_in(app, app.test_client())
    engine2.authorize(own_ssh_key(app.config["SETTINGS"].data_dir)[1])
    page = client.get("/engines/")
    assert page.status_code == 200 and own_ssh_key(app.config["SETTINGS"].data_dir)[1] in page.text

    for form in ({"name": "tls two", **tls_form}, {"name": "ssh two", "url": engine2.ssh_url}):
        t0 = time.monotonic()
        r = client.post("/engines/", data=form, headers={"HX-Request": "true", "HX-Target": "engines"})
        print(f"\nadd + check {form['name']}: {time.monotonic() - t0:.2f} s")
        assert r.status_code == 200 and "<html" not in r.text
        for title in ("Reached", "Version", "Permission", "Compose"):
            assert '<li class="finding ok">' in r.text
            assert f'{title}<span class="visually-hidden">: works' in r.text, (title, r.text)
        assert "Docker Engine 20.10" in r.text
        assert "the Compose CLI reaches it" in r.text
        assert "name folders on 127.0.0.1" in r.text  # the limits, said
    assert 'SSH login<span class="visually-hidden">: works' in r.text
    assert set(app.extensions["stackpilot.engines"].ids()) == {"local", "tls-two", "ssh-two"}
    status = client.get("/engines/ssh-two/status", headers={"HX-Request": "true"})
    assert "reachable" in status.text and "unreachable" not in status.text


@pytest.mark.parametrize(
    ("form_change", "words"),
    [
        ({"cert": "stranger-cert.pem", "key": "stranger-key.pem"}, "refused our client certificate"),
        ({"ca": "other-ca.pem"}, "not signed by the CA you gave"),
    ],
)
def test_wrong_certificate_is_said_in_words(app, engine2, tls_form, form_change, words):
    registry, store, data = _parts(app)
    form = {**tls_form, **{k: engine2.certs.text(v) for k, v in form_change.items()}}
    engine = add_engine(registry, store, data, NewEngine(name="wrong", **form))
    findings = check(engine)
    assert findings[0].title == "Reached" and findings[0].ok is False
    assert words in findings[0].detail
    assert "urllib3" not in findings[0].detail and "HTTPSConnectionPool" not in findings[0].detail
    assert [f.ok for f in findings[1:4]] == [None, None, None]


def test_wrong_ssh_key_is_said_in_words(app, engine2, tmp_path):
    registry, store, data = _parts(app)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    engine = add_engine(
        registry, store, data, NewEngine(name="wrong key", url=engine2.ssh_url, ssh_key=(tmp_path / "k").read_text())
    )
    findings = check(engine)
    assert (findings[0].title, findings[0].ok) == ("SSH login", False)
    assert "the SSH server refused our key for root" in findings[0].detail
    with pytest.raises(EngineUnavailable) as e:
        engine.version()
    assert "refused our key" in e.value.message


@pytest.mark.parametrize(
    ("environment", "words"),
    [
        ({"PATH": "/nonexistent"}, "`docker` is not on root's PATH on 127.0.0.1"),
        ({"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "SSH works, but Docker is not running on 127.0.0.1"),
    ],
)
def test_ssh_login_works_but_docker_there_does_not(app, engine2, tmp_path, environment, words):
    """The remote side is wrong, not the login: its PATH lacks docker, or its engine is gone."""
    registry, store, data = _parts(app)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    engine2.authorize((tmp_path / "k.pub").read_text(), environment)
    engine = add_engine(
        registry, store, data, NewEngine(name="half", url=engine2.ssh_url, ssh_key=(tmp_path / "k").read_text())
    )
    findings = check(engine)
    assert (findings[0].title, findings[0].ok) == ("SSH login", False)
    assert words in findings[0].detail, findings[0].detail
    with pytest.raises(EngineUnavailable) as e:
        engine.version()
    assert words in e.value.message


@pytest.mark.parametrize("transport", ["tls", "ssh"])
def test_compose_project_comes_up_on_engine2_with_compose_env(
    request, transport, engine2, busybox_image, tmp_path, docker_engine
):
    engine = request.getfixturevalue(f"{transport}_engine")
    project = f"{PREFIX}-e2{transport}"
    (tmp_path / "compose.yaml").write_text(
        f'services:\n  web:\n    image: {busybox_image}\n    command: ["sleep", "300"]\n    volumes: ["./data:/data"]\n'
    )
    env = {**os.environ, **engine.compose_env()}
    env.pop("DOCKER_CONTEXT", None)
    base = [*compose_bin(), "--project-directory", str(tmp_path), "-p", project]
    try:
        t0 = time.monotonic()
        up = subprocess.run([*base, "up", "-d", "--quiet-pull"], env=env, capture_output=True, text=True, timeout=120)
        print(f"\ncompose up over {transport}: {time.monotonic() - t0:.2f} s")
        assert up.returncode == 0, up.stderr
        found = containers.project_containers(engine, project)
        assert [(c.service, c.state) for c in found] == [("web", "running")]
        assert not docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
        ps = subprocess.run([*base, "ps", "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert "web" in ps.stdout
        # The relative bind mount resolved to the same path, on engine 2's host.
        mounts = engine.call(lambda c: c.api.inspect_container(found[0].id))["Mounts"]
        assert [m["Source"] for m in mounts] == [str(tmp_path / "data")]
    finally:
        down = subprocess.run([*base, "down", "-v", "-t", "0"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
    assert containers.project_containers(engine, project) == []


def _timed(fn, n: int = 10) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        fn()
        out.append(time.monotonic() - t0)
    return out


@pytest.mark.parametrize("death", ["refused", "wedged"])
def test_a_dead_engine_never_slows_the_other(app, engine2, tls_form, e2_container, death):
    registry, store, data = _parts(app)
    forwarder = TCPForwarder(engine2.tls_port).start()
    try:
        dead = add_engine(
            registry,
            store,
            data,
            NewEngine(name="behind forwarder", **{**tls_form, "url": f"tcp://127.0.0.1:{forwarder.port}"}),
        )
        local = registry.local
        ssh_ok = add_engine(registry, store, data, NewEngine(name="ssh alive", url=engine2.ssh_url))
        engine2.authorize(own_ssh_key(data)[1])
        assert containers.project_containers(dead, e2_container)
        assert containers.project_containers(ssh_ok, e2_container)  # its ssh connection is open
        client = sign_in(app, app.test_client())

        def measure() -> dict[str, list[float]]:
            return {
                "local list": _timed(lambda: local.call(lambda c: c.api.containers(all=True))),
                "ssh engine 2 list": _timed(lambda: containers.project_containers(ssh_ok, e2_container)),
                "status fragment": _timed(
                    lambda: client.get("/engines/local/status", headers={"HX-Request": "true"}), 5
                ),
                "engines page": _timed(lambda: client.get("/engines/"), 3),
            }

        before = measure()  # same run, same load: the machine is shared

        forwarder.stop() if death == "refused" else forwarder.wedge()
        t0 = time.monotonic()
        with pytest.raises(EngineUnavailable):  # the first call to notice pays the connect timeout
            dead.call(lambda c: c.api.containers(all=True))
        first = time.monotonic() - t0
        hammering = threading.Event()
        dead_calls: list[float] = []

        def hammer() -> None:
            while not hammering.is_set():
                t0 = time.monotonic()
                with pytest.raises(EngineUnavailable):
                    dead.call(lambda c: c.api.containers(all=True))
                dead_calls.append(time.monotonic() - t0)
                hammering.wait(0.02)  # many open tabs polling it, not a busy loop

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            during = measure()
        finally:
            hammering.set()
            for t in threads:
                t.join(timeout=15)
        ms = "; ".join(
            f"{k} {statistics.median(before[k]) * 1000:.1f} -> {statistics.median(v) * 1000:.1f} ms "
            f"(max {max(before[k]) * 1000:.0f} -> {max(v) * 1000:.0f})"
            for k, v in during.items()
        )
        print(
            f"\n[{death}] before -> during: {ms}; dead engine: first call {first * 1000:.0f} ms, then "
            f"{len(dead_calls)} calls, median {statistics.median(dead_calls) * 1000:.2f} ms, max "
            f"{max(dead_calls) * 1000:.0f} ms"
        )
        for k, v in during.items():  # not one connect timeout (3 s) reaches engine 1's calls
            assert statistics.median(v) < statistics.median(before[k]) + 0.5, k
            assert max(v) < max(before[k]) + 2.0, k
        # Fail fast: at most one connect timeout (3 s, plus slack for a loaded machine) per backoff
        # window, never one per call.
        assert first < 5 and max(dead_calls) < 5 and statistics.median(dead_calls) < 0.05
        state = dead.state()
        assert state.reachable is False and ("nothing accepts" in state.reason or "did not answer" in state.reason)

        forwarder.start()  # engine 2 comes back: the next try after the backoff reaches it
        dead.reset()
        assert containers.project_containers(dead, e2_container)
        assert dead.state().reachable is True
    finally:
        forwarder.stop()


def test_engine2_killed_its_calls_fail_fast_in_words_and_engine1_stays_fast(app, busybox_image):
    """A private engine 2 (not the shared one), really killed with SIGKILL mid-run."""
    from tests.support.engine2 import Engine2

    e2 = Engine2().start()
    try:
        registry, store, data = _parts(app)
        c = e2.certs
        tls = add_engine(
            registry,
            store,
            data,
            NewEngine(
                name="doomed tls",
                url=e2.tcp_url,
                ca=c.text("ca.pem"),
                cert=c.text("client-cert.pem"),
                key=c.text("client-key.pem"),
            ),
        )
        e2.authorize(own_ssh_key(data)[1])
        ssh = add_engine(registry, store, data, NewEngine(name="doomed ssh", url=e2.ssh_url))
        assert tls.version() == ssh.version()
        local = registry.local
        baseline = _timed(lambda: local.call(lambda cl: cl.api.containers(all=True)))

        e2.kill()
        timings: dict[str, list[float]] = {"local": [], "tls": [], "ssh": []}
        reasons = {}
        for _ in range(10):
            for key, engine in (("tls", tls), ("ssh", ssh), ("local", local)):
                t0 = time.monotonic()
                try:
                    engine.call(lambda cl: cl.api.containers(all=True))
                except EngineUnavailable as e:
                    reasons.setdefault(key, e.message)
                timings[key].append(time.monotonic() - t0)
        print(
            "\nengine 2 killed: "
            + "; ".join(
                f"{k} first {v[0] * 1000:.0f} ms, max after {max(v[1:]) * 1000:.1f} ms" for k, v in timings.items()
            )
        )
        print(f"reasons: {reasons}")
        assert "local" not in reasons and max(timings["local"]) < max(baseline) + 1.0
        assert max(timings["tls"]) < 1.0 and max(timings["ssh"]) < 8 and max(timings["ssh"][1:]) < 0.05
        assert "nothing accepts connections at 127.0.0.1" in reasons["tls"]
        assert "SSH works, but Docker is not running on 127.0.0.1" in reasons["ssh"]
        assert tls.state().reachable is False and ssh.state().reachable is False
    finally:
        e2.stop()
