"""Fixtures of the services tests: the fixture stacks, an app pointed at them, and readers of the
table as a person sees it (state word per row)."""

from __future__ import annotations

import re
import secrets

import pytest

from app import compose
from tests.conftest import PREFIX
from tests.conftest import find_run
from tests.conftest import sign_in
from tests.services import stacks
from tests.support.live import free_port
from tests.support.live import wait_for

ROW_STATE = re.compile(r'id="r-([^"]+)-state".*?data-state="([^"]+)"[^>]*>([^<]*)<', re.S)
RUN_ID = re.compile(r'data-run="([^"]+)"')


@pytest.fixture
def web_stack(make_stack):
    """web + db + worker (+ init, crashy, idle) stack, not started."""
    return make_stack({"docker-compose.yml": stacks.fill(stacks.WEB_DB_WORKER, web_port=str(free_port()))}, name="web")


def app_for(app_factory, proj, **stack_settings):
    """An app managing proj (project name aligned with the fixture's, so cleanup matches)."""
    app = app_factory(stack_dir=proj.dir, **stack_settings.pop("env", {}))
    saved = {"project": proj.project, "files": [], "profiles": []}
    saved.update(stack_settings)
    app.extensions["stackpilot.store"].set_setting("stack", saved)
    return app


@pytest.fixture
def health_stack(make_stack):
    """db with a failing healthcheck that says why, api waiting for it healthy, cache only started."""
    return make_stack(
        {"docker-compose.yml": stacks.fill(stacks.HEALTH), ".env": "GREETING=hello\n", "cache.env": "MODE=one\n"},
        name="health",
    )


@pytest.fixture
def web_app(app_factory, web_stack):
    return app_for(app_factory, web_stack)


@pytest.fixture
def operator(web_app):
    return sign_in(web_app, web_app.test_client(), "operator")


def states(client, path: str = "/services") -> dict[str, tuple[str, str]]:
    """{row slug: (state key, word shown)} from the page."""
    html = client.get(path).get_data(as_text=True)
    return {m[1]: (m[2], m[3].strip()) for m in ROW_STATE.finditer(html)}


def wait_state(client, slug: str, *wanted: str, timeout: float = 30.0) -> tuple[str, str]:
    def check():
        got = states(client).get(slug)
        return got if got and got[0] in wanted else None

    return wait_for(check, timeout=timeout, interval=0.3, message=f"{slug} in {wanted}")


def finish(response, timeout: float = 120.0) -> compose.Run:
    """The run an action response started, once it has ended."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    run_id = RUN_ID.search(response.get_data(as_text=True))[1]
    run = find_run(run_id)
    assert run is not None
    assert run.wait(timeout), f"run {run.title} did not finish"
    return run


def shared_name() -> str:
    return f"{PREFIX}-ollama-{secrets.token_hex(3)}"
