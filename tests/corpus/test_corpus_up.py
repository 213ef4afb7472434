"""Every corpus stack comes up (issue 10): from a fresh copy, the services page either names why
the files fail as published or lists every service; after the stack's documented copy step the
table lists every service Compose lists; with stand-ins for its images (tests/corpus/standins.py)
Stackpilot's own Up action starts it and every service reaches running, healthy or completed in
the table.

Per-stack facts are data (corpus_up.yaml, index.yaml), never code. Stacks are torn down with
`down -v` in the background while the next one is read, but the next Up waits for it: this
engine (20.10) left networks with stale "active endpoints" (unremovable, a leftover) when one
project's containers were removed while another's network was being created.
"""

from __future__ import annotations

import html
import json
import logging
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import PREFIX
from tests.conftest import compose_bin
from tests.conftest import sign_in
from tests.corpus import corpus
from tests.corpus import standins
from tests.services.conftest import finish
from tests.support.live import wait_for

pytestmark = pytest.mark.docker
log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
DATA = yaml.safe_load((HERE / "corpus_up.yaml").read_text(encoding="utf-8")) or {}
OVERRIDE = "zz-standins.override.yml"
UP_TIMEOUT = 150  # seconds for Stackpilot's Up run (sentry: 57 services behind health gates)
SETTLE_TIMEOUT = 60  # seconds for every row to read running, healthy or completed
ROW = re.compile(r'<tr id="r-([^"]+)" class="svc-row[^"]*" data-service="([^"]*)"')
STATE = re.compile(r'id="r-([^"]+)-state".*?data-state="([^"]+)"[^>]*>([^<]*)<', re.S)
HEALTH = re.compile(r'id="r-([^"]+)-health"[^>]*>(.*?)</td>', re.S)


def limits(name: str) -> dict:
    return (DATA.get("stacks") or {}).get(name) or {}


def finish_teardowns(procs: list[subprocess.Popen]) -> None:
    while procs:
        proc = procs.pop()
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def teardowns():
    """Background `down -v` runs; the next Up and the module's end wait for them."""
    procs: list[subprocess.Popen] = []
    yield procs
    finish_teardowns(procs)


def compose_args(workdir: Path, project: str, files: list[str], profiles: list[str]) -> list[str]:
    args = [*compose_bin(), "--project-directory", str(workdir), "-p", project]
    for name in files:
        args += ["-f", str(workdir / name)]
    for profile in profiles:
        args += ["--profile", profile]
    return args


def compose_says(args: list[str], *more: str) -> str:
    done = subprocess.run([*args, *more], capture_output=True, text=True, timeout=60, cwd=args[2])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def table_rows(client) -> dict[str, tuple[str, str]]:
    """{service: (state key, health cell text)} from the table fragment, as the poll gets it."""
    r = client.get("/services/table")
    assert r.status_code == 200, r.status_code
    text = r.get_data(as_text=True)
    assert "<html" not in text
    names = {s: html.unescape(n) for s, n in ROW.findall(text)}
    states = {m[1]: m[2] for m in STATE.finditer(text)}
    healths = {m[1]: re.sub(r"<[^>]+>", " ", m[2]) for m in HEALTH.finditer(text)}
    return {name: (states.get(s, ""), " ".join(healths.get(s, "").split())) for s, name in names.items()}


def up_enough(row: tuple[str, str], checked: bool) -> bool:
    state, health = row
    if state == "completed":
        return True
    return state == "running" and (not checked or health.startswith("healthy"))


@pytest.mark.parametrize("stack", corpus.params())
def test_corpus_stack_comes_up(stack, tmp_path, app_factory, busybox_image, teardowns):
    stack = corpus.require(stack)
    limit = limits(stack.name)
    project = f"{PREFIX}-{stack.name}".lower()
    workdir = stack.copy_to(tmp_path / project)
    files = list(limit.get("files") or stack.files)
    profiles = stack.profiles
    app = app_factory(stack_dir=workdir)
    store = app.extensions["stackpilot.store"]
    store.set_setting("stack", {"project": project, "files": files, "profiles": profiles})
    admin = sign_in(app, app.test_client(), "admin")
    args = compose_args(workdir, project, files, profiles)

    started = time.monotonic()

    def phase(name: str) -> None:
        log.info("%s: %s at %.1f s", stack.name, name, time.monotonic() - started)

    # 1. As published (no copy step): the page names why Compose refuses the files, in its words.
    published = (stack.entry.get("start") or {}).get("config_as_published") or {}
    page = admin.get("/services")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    if published.get("config") == "fails":
        banner = text.split('id="svc-banner"')[1].split('id="svc-')[0]
        said = html.unescape(banner)
        assert "banner-error" in banner and any(words in said for words in limit["as_published"]), said[:1500]
        assert project in text  # the page still says which stack it is about

    phase("as published checked")
    # 2. The documented copy step (and the documented .env lines): the table lists every service.
    for step in stack.copies:
        (workdir / step["to"]).write_bytes((workdir / step["from"]).read_bytes())
    if limit.get("env"):
        with (workdir / ".env").open("a", encoding="utf-8") as env:
            env.writelines(f"{k}={v}\n" for k, v in limit["env"].items())
    expected = set(compose_says(args, "config", "--services").split())
    variant = next(
        (
            v
            for v in (stack.entry.get("start") or {}).get("variants") or ()
            if v.get("files") == files and list(v.get("profiles") or ()) == profiles and v.get("services") is not None
        ),
        None,
    )
    if variant is not None:
        assert len(expected) == variant["services"]
    rows = table_rows(admin)
    assert expected <= set(rows), f"missing from the table: {sorted(expected - set(rows))}"
    assert all(rows[name][0] == "not-created" for name in expected)
    if limit.get("cannot"):
        pytest.skip(f"{stack.name} cannot come up here: {limit['cannot']}")

    phase("table listed")
    # 3. Stand-ins for its images, then Stackpilot's own Up: every service comes up.
    config = json.loads(compose_says(args, "config", "--format", "json"))
    services = config.get("services") or {}
    one_shots = {
        dep
        for spec in services.values()
        for dep, cond in (spec.get("depends_on") or {}).items()
        if (cond or {}).get("condition") == "service_completed_successfully"
    }
    (workdir / OVERRIDE).write_text(
        standins.override(config, project, busybox_image, tmp_path / "binds", one_shots), encoding="utf-8"
    )
    files = [*files, OVERRIDE]
    store.set_setting("stack", {"project": project, "files": files, "profiles": profiles})
    args = compose_args(workdir, project, files, profiles)
    checked = {
        name
        for name, spec in services.items()
        if (spec.get("healthcheck") or {}) and not spec["healthcheck"].get("disable")
    }
    operator = sign_in(app, app.test_client(), "operator")
    finish_teardowns(teardowns)  # the previous stack is gone before this one creates its networks
    try:
        run = finish(operator.post("/stack/up"), timeout=UP_TIMEOUT)
        assert run.ok, "\n".join(run.lines_since(0)[0][-30:])
        phase("up finished")

        def settled():
            now = table_rows(operator)
            late = {n: now.get(n) for n in expected if not up_enough(now.get(n, ("", "")), n in checked)}
            return True if not late else (False, late)

        result = wait_for(
            lambda: settled() is True,
            timeout=SETTLE_TIMEOUT,
            interval=0.5,
            message=f"every service of {stack.name} running, healthy or completed",
        )
        assert result
        phase("settled")
        # Just created from the current files: no container may be marked as running an older one.
        fragment = operator.get("/services/table").get_data(as_text=True)
        drifted = sorted(
            {
                html.unescape(n)
                for n in re.findall(r'<tr id="r-([^"]+)"', fragment)
                if f'id="r-{n}-state"' in fragment
                and 'class="drift"' in fragment.split(f'id="r-{n}-state"')[1].split("</td>")[0]
            }
        )
        assert not drifted, f"marked as drifted right after Up: {drifted}"
        phase("drift checked")
    finally:
        teardowns.append(
            subprocess.Popen(
                [*args, "down", "-v", "-t", "0", "--remove-orphans"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=workdir,
            )
        )
