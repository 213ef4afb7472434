"""Image updates (issue 14) against a real registry on loopback: the check sees a new digest for a
tag without pulling; Update recreates exactly the services on that image; Roll back returns to the
image kept under <repo>:stackpilot-previous-<service>; an unreachable registry is one image's state."""

from __future__ import annotations

import subprocess
import time

import pytest

from app.stack import updates
from tests.conftest import sign_in
from tests.services.conftest import app_for
from tests.services.conftest import finish
from tests.support import registry as registry_support
from tests.support.live import wait_for

pytestmark = pytest.mark.skipif(
    not registry_support.available(), reason="Debian's docker-registry is not installed (tests/prepare.sh)"
)


@pytest.fixture
def registry():
    reg = registry_support.Registry().start()
    yield reg
    reg.stop()


def _version(proj, service: str) -> str:
    return proj.compose("exec", "-T", service, "cat", "/version", check=False).stdout.strip()


def _ids(docker_engine, project: str) -> dict[str, str]:
    found = docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    return {c.labels["com.docker.compose.service"]: c.id for c in found}


def test_check_update_rollback(registry, make_stack, app_factory, docker_engine, busybox_image):
    ref = registry.push("sp/app", "stable", "v1")
    v1 = docker_engine.images.get(ref).id
    pinned = f"{registry.host}/sp/app@" + docker_engine.images.get(ref).attrs["RepoDigests"][0].partition("@")[2]
    compose = f"""services:
  api:
    image: {ref}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  worker:
    image: {ref}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    depends_on: [api]
  other:
    image: {busybox_image}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  fixed:
    image: {pinned}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  gone:
    image: localhost:1/sp/nowhere:1
    pull_policy: never
    profiles: [never]
"""
    proj = make_stack({"docker-compose.yml": compose}, name="upd")
    try:
        proj.compose("up", "-d", "--pull", "never")
        app = app_for(app_factory, proj)
        op = sign_in(app, app.test_client(), "operator")
        assert "images not checked yet" in op.get("/services").get_data(as_text=True)

        registry.push("sp/app", "stable", "v2")  # the tag moves on the registry (pushed from here)...
        v2 = docker_engine.images.get(ref).id
        subprocess.run(["docker", "tag", v1, ref], check=True)  # ...and locally it is v1 again, as after a pull

        assert op.post("/updates/check").status_code == 200
        result = wait_for(
            lambda: (r := updates.cached(_stack(app))).checked_at and not r.running and r,
            timeout=20,
            message="check done",
        )
        states = {s.ref: s.state for s in result.images.values()}
        assert states[ref] == "update" and states[pinned] == "pinned"
        assert result.images[ref].services == ("api", "worker")
        page = op.get("/services").get_data(as_text=True)
        assert 'data-update="update"' in page and 'data-update="pinned"' in page and 'data-updates="1"' in page
        assert _version(proj, "api") == "v1"

        before = _ids(docker_engine, proj.project)
        started = time.monotonic()
        run = finish(op.post("/updates/service/worker/update"))
        assert run.ok, run.lines_since(0)[0]
        after = _ids(docker_engine, proj.project)
        assert {s for s in before if before[s] != after[s]} == {"api", "worker"}  # exactly the services on it
        assert _version(proj, "api") == "v2" and _version(proj, "worker") == "v2"
        assert docker_engine.images.get(f"{registry.host}/sp/app:stackpilot-previous-worker")
        events = [(e.action, e.result, e.detail) for e in app.extensions["stackpilot.store"].audit_events()]
        audit = next(d for a, r, d in events if a == "service.update" and r == "ok")
        assert "sha256:" in audit and "->" in audit
        print(f"update run {time.monotonic() - started:.1f} s")

        run = finish(op.post("/updates/service/worker/rollback"))
        assert run.ok, run.lines_since(0)[0]
        assert _version(proj, "api") == "v1" and _version(proj, "worker") == "v1"
        assert _ids(docker_engine, proj.project)["other"] == before["other"]

        # Update all: the check finds the tag moved again, every service on it recreated (api before worker).
        updates.check(app.extensions["stackpilot.engine"], _stack(app), _model(app))
        run = finish(op.post("/updates/stack/update-all"))
        assert run.ok, run.lines_since(0)[0]
        assert run.args[run.args.index("pull") : run.args.index("pull") + 4] == ["pull", "--", "api", "worker"]
        assert _version(proj, "worker") == "v2"
        assert op.post("/updates/service/fixed/update").status_code == 422  # pinned: never updated
    finally:
        proj.compose("down", "-t", "0", check=False)
        subprocess.run(["docker", "rmi", "-f", v1, *(x for x in [locals().get("v2")] if x)], capture_output=True)


def test_unreachable_registry_is_reported_per_image(registry, make_stack, app_factory, docker_engine, busybox_image):
    dead = registry.push("sp/dead", "1", "v1")  # pulled from a registry (it has a repo digest)...
    registry.stop()  # ...that has gone away
    proj = make_stack(
        {
            "docker-compose.yml": f"""services:
  a:
    image: {dead}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
  b:
    image: {busybox_image}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
"""
        },
        name="upd2",
    )
    try:
        app = app_for(app_factory, proj)
        with app.app_context():
            from app.stack.model import load_model

            stack = _stack(app)
            engine = app.extensions["stackpilot.engine"]
            result = updates.check(engine, stack, load_model(app.extensions["stackpilot.runners"].for_stack(stack)))
        a = result.images[dead]
        assert a.state == "error" and "connection refused" in a.error and a.services == ("a",)
        assert result.images[busybox_image].state == "local"  # imported here, never pulled: no registry asked
        op = sign_in(app, app.test_client(), "operator")
        html = op.get("/services").get_data(as_text=True)
        assert 'data-update="error"' in html and f'data-ref="{dead}"' in html and "connection refused" in html
    finally:
        subprocess.run(["docker", "rmi", "-f", dead], capture_output=True)


def _model(app):
    from app.stack.model import load_model

    with app.app_context():
        return load_model(app.extensions["stackpilot.runners"].for_stack(_stack(app)))


def _stack(app):
    with app.test_request_context("/services"):
        from app.web.context import current_stack

        return current_stack()


@pytest.mark.browser
def test_update_badge_and_run_in_the_browser(registry, make_stack, server_factory, page, docker_engine):
    from app.store import Store
    from tests.support.screens import shoot

    ref = registry.push("sp/web", "stable", "v1")
    v1 = docker_engine.images.get(ref).id
    proj = make_stack(
        {
            "docker-compose.yml": f"""services:
  web:
    image: {ref}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
"""
        },
        name="updb",
    )
    try:
        proj.compose("up", "-d", "--pull", "never")
        registry.push("sp/web", "stable", "v2")
        v2 = docker_engine.images.get(ref).id
        subprocess.run(["docker", "tag", v1, ref], check=True)
        server = server_factory(stack_dir=proj.dir)
        Store(server.data_dir / "stackpilot.sqlite3").set_setting(
            "stack", {"project": proj.project, "files": [], "profiles": []}
        )
        page.sign_in(server)
        pg = page.page
        pg.goto(server.url + "/services")
        pg.click("#act-updates summary")
        pg.click("#act-updates button[data-action=update-check]")
        pg.wait_for_selector("#r-web [data-update=update]", timeout=20_000)  # the page reloads when done
        assert pg.locator("#act-updates .count").inner_text() == "1"
        pg.locator("#act-updates").evaluate("d => d.open = true")
        shoot(pg, "build-update-badges")
        pg.locator("#act-updates").evaluate("d => d.open = false")
        pg.click("#menu-web summary")
        pg.once("dialog", lambda d: d.accept())
        pg.click("#menu-web button[data-action=update]")
        pg.wait_for_selector(".run-panel .run-title:has-text('update')")
        pg.wait_for_selector(".run-status .badge:has-text('exit code 0')", timeout=60_000)
        assert "stackpilot-previous-web" in pg.locator(".run-log").inner_text()
        shoot(pg, "build-update-run")
        assert proj.compose("exec", "-T", "web", "cat", "/version").stdout.strip() == "v2"
    finally:
        proj.compose("down", "-t", "0", check=False)
        subprocess.run(["docker", "rmi", "-f", v1, *(x for x in [locals().get("v2")] if x)], capture_output=True)
