"""The whole wizard in Chromium against the real server, engine and Compose: from the setup token
to a running stack on the service table; then a re-run with a service whose healthcheck fails.

Set STACKPILOT_SHOTS=/tmp/shots/setup to also save every step light/dark at 390 and 1280 px.
"""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import PREFIX
from tests.setup import fixture_stack as fx
from tests.support.live import LiveServer
from tests.support.live import free_port
from tests.support.screens import shoot

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]
PASSWORD = "owner-password-long"


@pytest.fixture
def local_ai(make_stack, tmp_path, busybox_image):
    name = f"lai{secrets.token_hex(2)}"
    project = f"{PREFIX}-{name}"
    remote = fx.make_supabase_remote(tmp_path, busybox_image)
    proj = make_stack(fx.files(project, free_port()), name=name)
    assert proj.project == project
    return proj, remote


@pytest.fixture
def unclaimed_server(tmp_path, local_ai):
    proj, _remote = local_ai
    data = tmp_path / "server-data"
    data.mkdir()
    srv = LiveServer(data_dir=data, env={"STACKPILOT_STACK_DIR": str(proj.dir)}).start()
    yield srv
    srv.stop()
    print(srv.log()[-6000:])  # shown by pytest only when the test failed


def url_for_services(srv) -> set[str]:
    """The service table's addresses (it answers at / and /services)."""
    return {f"{srv.url}/", f"{srv.url}/services"}


def _states(docker_engine, project: str) -> dict[str, tuple[str, str]]:
    out = {}
    for c in docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
        health = (c.attrs["State"].get("Health") or {}).get("Status", "")
        out[c.labels["com.docker.compose.service"]] = (c.status, health)
    return out


def test_wizard_from_claim_to_running_stack_then_failure_view(
    page, unclaimed_server, local_ai, docker_engine, busybox_image
):
    srv = unclaimed_server
    proj, remote = local_ai
    pg = page.page
    pg.set_default_timeout(20_000)

    # 1. Claim, with the ready link from the log (token in the fragment).
    token = (srv.data_dir / "setup-token").read_text().strip()
    pg.goto(f"{srv.url}/setup/#token={token}")
    assert pg.input_value("#token") == token and "#token" not in pg.url
    shoot(pg, "1-claim")
    pg.fill("#username", "owner")
    pg.fill("#password", PASSWORD)
    pg.click("button[type=submit]")

    # 2. Preflight rows.
    pg.wait_for_url("**/setup/preflight")
    pg.wait_for_selector("#check-engine")
    for check in ("engine", "compose", "files", "disk", "ports", "nvidia", "amd", "ram"):
        assert pg.locator(f"#check-{check} .badge").count() == 1, check
    assert "Reachable" in pg.inner_text("#check-engine")
    assert "fetched at launch" in pg.inner_text("#check-files")
    shoot(pg, "2-preflight")
    pg.click("button:has-text('Continue')")

    # 3. Stack: recipe recognised, profile only where possible, git URL pointed at our remote.
    pg.wait_for_url("**/setup/stack")
    assert "Local AI Packaged" in pg.inner_text(".recipe-note")
    # cpu / gpu-nvidia / gpu-amd start one container name: offered as a choice among themselves
    assert pg.is_disabled("input[name=group_0][value=gpu-nvidia]")
    assert pg.is_checked("input[name=group_0][value=cpu]")
    assert pg.is_checked("input[name=file][value='docker-compose.yml']")
    assert pg.is_checked("input[name=override][value=private]")
    pg.fill("#project", proj.project)
    pg.fill("#source-supabase", remote)
    shoot(pg, "3-stack")
    pg.click("button:has-text('Continue')")

    # 4. Configuration: every secret generated in one click.
    pg.wait_for_url("**/setup/config")
    assert pg.locator(".badge.warn", has_text="placeholder").count() >= 15
    shoot(pg, "4-config-before")
    pg.click("button:has-text('Generate all missing secrets')")
    pg.wait_for_selector("text=Generated")
    assert pg.locator(".badge.warn", has_text="placeholder").count() == 0
    assert pg.input_value("#var-DASHBOARD_USERNAME") == "supabase"
    shoot(pg, "4-config")
    pg.click("button:has-text('Continue')")

    # 5. HTTPS: a bad name is refused with the reason; good names pass.
    pg.wait_for_url("**/setup/https")
    pg.fill("#host-N8N_HOSTNAME", "n8n..home.lan")
    pg.click("button:has-text('Continue')")
    assert "N8N_HOSTNAME: Not a valid host name" in pg.inner_text(".form-error")
    pg.fill("#host-N8N_HOSTNAME", "n8n.home.lan")
    pg.fill("#management", "stackpilot.home.lan")
    shoot(pg, "5-https")
    pg.click("button:has-text('Continue')")

    # 6. Review: everything listed, nothing written yet.
    pg.wait_for_url("**/setup/review")
    review = pg.inner_text(".wizard-body")
    assert "Made from .env.example" in review and "supabase/docker/.env" in review
    assert "searxng/settings.yml" in review and remote in review and "--profile cpu" in review
    assert not (proj.dir / ".env").exists() and not (proj.dir / "supabase").exists()
    assert not (proj.dir / "searxng" / "settings.yml").exists()
    shoot(pg, "6-review")

    # 7. Launch: live progress, then the service table.
    with pg.expect_navigation():
        pg.click("button:has-text('Start the stack')")
    pg.wait_for_selector("#launch-panel")
    shoot(pg, "7-launch-progress")
    table = url_for_services(srv)
    pg.wait_for_url(lambda url: url.split("?")[0] in table, timeout=240_000)
    pg.wait_for_selector("text=Setup: start the stack")  # the table shows the launch's Compose run...
    main_text = pg.inner_text("main")
    assert "failed" not in main_text, main_text  # ...and it did not fail
    states = _states(docker_engine, proj.project)
    for service in ("vector", "db", "analytics", "flowise", "searxng"):
        assert states[service] == ("running", "healthy"), (service, states)
    assert states["n8n"][0] == states["studio"][0] == states["ollama-cpu"][0] == "running"
    assert states["n8n-import"][0] == "exited" and "ollama-gpu" not in states
    env = (proj.dir / ".env").read_text()
    assert "super-secret-key" not in env and "N8N_HOSTNAME=n8n.home.lan" in env
    assert (proj.dir / "supabase" / "docker" / ".env").read_text() == env
    assert not (proj.dir / "supabase" / "apps").exists()  # sparse: docker/ only
    settings_yml = (proj.dir / "searxng" / "settings.yml").read_text()
    assert "ultrasecretkey" not in settings_yml
    shoot(pg, "8-service-table")

    # Re-run after someone added a service whose healthcheck fails.
    compose_file = proj.dir / "docker-compose.yml"
    compose_file.write_text(compose_file.read_text() + fx.BROKEN.replace("{image}", busybox_image))
    pg.goto(f"{srv.url}/setup/")
    assert "Setup is finished" in pg.inner_text("h1")
    shoot(pg, "9-done")
    pg.click("button:has-text('Run setup again')")
    pg.wait_for_url("**/setup/preflight")
    pg.wait_for_selector("#check-ports")
    assert "free" in pg.inner_text("#check-ports")  # our own running stack does not count
    pg.click("button:has-text('Continue')")
    pg.wait_for_url("**/setup/stack")
    assert pg.input_value("#project") == proj.project  # earlier choices kept
    pg.click("button:has-text('Continue')")
    pg.wait_for_url("**/setup/config")
    assert pg.locator("text=Generate all missing secrets").count() == 0
    pg.click("button:has-text('Continue')")
    pg.wait_for_url("**/setup/https")
    assert pg.input_value("#host-N8N_HOSTNAME") == "n8n.home.lan"
    pg.click("button:has-text('Continue')")
    pg.wait_for_url("**/setup/review")
    assert "update" in pg.inner_text(".plan-files") or "unchanged" in pg.inner_text(".plan-files")
    pg.click("button:has-text('Start the stack')")
    pg.wait_for_selector(".failure", timeout=240_000)
    failure = pg.inner_text(".failure")
    assert "clickhouse did not start" in failure and "healthcheck fails" in failure
    assert "FATAL: cannot open /var/lib/clickhouse" in failure
    logs_link = pg.get_attribute(".failure a:has-text('Open the logs of clickhouse')", "href")
    assert logs_link == "/logs/clickhouse"
    assert "failed" in pg.inner_text("#svc-clickhouse") and "healthy" in pg.inner_text("#svc-db")
    shoot(pg, "10-failure")
    pg.click(".failure a:has-text('Open the logs of clickhouse')")
    pg.wait_for_url("**/logs/clickhouse")
    assert "clickhouse" in pg.inner_text("main")
    pg.goto(f"{srv.url}/setup/launch")  # the failure view is still there to retry from
    with pg.expect_navigation():
        pg.click("button:has-text('Retry')")
    pg.wait_for_selector(".failure", timeout=240_000)
    assert "clickhouse did not start" in pg.inner_text(".failure")
    # The refused HTTPS form (422) is the only complaint allowed: no CSP violation, no script error.
    # (Chromium aborts a poll with ERR_NETWORK_CHANGED when Docker adds a bridge during a launch.)
    assert [e for e in page.console_errors if "status of 422" not in e and "ERR_NETWORK_CHANGED" not in e] == []


def test_pasted_setup_link_fills_the_token_in_an_open_tab(page, tmp_path):
    """A tab already on /setup/ only sees the fragment change (no reload): hashchange fills it."""
    from tests.support.live import LiveServer

    data = tmp_path / "unclaimed"
    data.mkdir()
    srv = LiveServer(data_dir=data, env={}).start()
    try:
        pg = page.page
        pg.goto(srv.url + "/setup/")
        assert pg.input_value("#token") == ""
        token = (data / "setup-token").read_text().strip()
        pg.evaluate("t => { window.location.hash = 'token=' + t; }", token)
        pg.wait_for_function("document.getElementById('token').value !== ''", timeout=5000)
        assert pg.input_value("#token") == token
        assert "token" not in pg.evaluate("window.location.href")  # dropped from the address bar
        assert pg.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
        assert not page.console_errors
    finally:
        srv.stop()
