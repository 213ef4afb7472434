"""A person edits, generates and saves values in a real browser against the real server; the
pages are screenshotted in light/dark at phone and desktop widths (PNG under /tmp/shots/config)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.stack import secrets as gen
from app.stack.envfile import EnvDocument
from tests.config.test_web import COMPOSE
from tests.config.test_web import ENV
from tests.config.test_web import EXAMPLE
from tests.corpus import corpus
from tests.support.live import wait_for
from tests.support.screens import shoot

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("STACKPILOT_SHOTS", "/tmp/shots/config"))


def test_edit_generate_and_save_in_the_browser(make_stack, server_factory, page):
    proj = make_stack({"docker-compose.yml": COMPOSE, ".env.example": EXAMPLE, ".env": ENV})
    server = server_factory(stack_dir=proj.dir)
    page.sign_in(server)
    p = page.page
    p.goto(server.url + "/config/")
    p.fill("#in-GREETING", "hello 'world' $USER")
    p.click("#field-ENCRYPTION_KEY button:has-text('Generate')")
    wait_for(lambda: len(p.input_value("#in-ENCRYPTION_KEY")) == 64, message="a generated hex key")
    key = p.input_value("#in-ENCRYPTION_KEY")
    assert p.get_attribute("#in-ENCRYPTION_KEY", "type") == "password"
    p.click("#field-ENCRYPTION_KEY [data-reveal]")
    assert p.get_attribute("#in-ENCRYPTION_KEY", "type") == "text"
    p.click("#config-form .config-toolbar button[type=submit]")
    p.wait_for_selector("#config-result")
    assert "Saved." in p.inner_text("#config-result")
    assert "Recreate web" in p.inner_text("#config-result")
    p.click("#config-result button:has-text('Recreate web')")
    panel = p.wait_for_selector("#config-result .recreate-runs .run-panel")
    assert "recreate" in panel.inner_text()
    doc = EnvDocument.load(proj.dir / ".env")
    assert doc.get("GREETING") == "hello 'world' $USER"
    assert doc.get("ENCRYPTION_KEY") == key
    assert doc.get("POSTGRES_PASSWORD") == "Str0ngPassw0rdX"

    # bulk generate: JWT_SECRET and ANON_KEY get values, the real password stays; then save
    p.click("text=Generate missing secrets")
    p.wait_for_selector("#config-form .banner-info")
    p.click("#config-form .config-toolbar button[type=submit]")
    p.wait_for_selector("#config-result")
    doc = EnvDocument.load(proj.dir / ".env")
    assert gen.jwt_verify(doc.get("ANON_KEY"), doc.get("JWT_SECRET"))
    assert doc.get("POSTGRES_PASSWORD") == "Str0ngPassw0rdX"

    # search hides what does not match
    p.fill("#config-search", "greeting")
    assert p.is_visible("#field-GREETING") and not p.is_visible("#field-JWT_SECRET")
    assert not page.console_errors, page.console_errors


def test_screenshots(make_stack, server_factory, browser):
    proj = make_stack({"docker-compose.yml": COMPOSE, ".env.example": EXAMPLE, ".env": ENV})
    (proj.dir / ".env_backups").mkdir(mode=0o700)
    server = server_factory(stack_dir=proj.dir)
    session = server.session("admin", "admin")
    html = session.get(server.url + "/config/").text
    import re

    version = re.search(r'name="version" value="([^"]+)"', html).group(1)
    data = {"version": version, "v.GREETING": "hi there", "v.POSTGRES_PASSWORD": "Str0ngPassw0rdX", "v.EXTRA": "1"}
    assert session.post(server.url + "/config/save", data=data).status_code == 200
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        for width in (390, 1280):
            context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 900})
            pg = context.new_page()
            errors: list[str] = []
            pg.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            pg.goto(server.url + "/login")
            pg.fill("#username", "admin")
            from tests.support.live import TEST_PASSWORD

            pg.fill("#password", TEST_PASSWORD)
            pg.click("button[type=submit]")
            pg.wait_for_load_state()
            pg.goto(server.url + "/config/")
            pg.screenshot(path=str(SHOTS / f"config-{scheme}-{width}.png"), full_page=True)
            pg.goto(server.url + "/config/backups")
            pg.click("text=Compare with current")
            pg.wait_for_selector(".diff-lines")
            pg.screenshot(path=str(SHOTS / f"backups-{scheme}-{width}.png"), full_page=True)
            pg.goto(server.url + "/config/raw")
            pg.screenshot(path=str(SHOTS / f"raw-{scheme}-{width}.png"), full_page=False)
            assert not errors, errors
            context.close()


def test_supabase_fields_view_saves_stock_and_resigns_in_the_browser(tmp_path, server_factory, page):
    """Issue 10 in a real browser: the corpus supabase .env shows no refusal, generating JWT_SECRET
    re-signs ANON_KEY and SERVICE_ROLE_KEY at once, and the saved file verifies."""
    stack = corpus.require(
        next((s for s in corpus.STACKS if s.entry.get("env_example", "").endswith("docker/.env.example")), None)
    )
    workdir = stack.copy_to(tmp_path / stack.name, with_copies=True)
    server = server_factory(stack_dir=workdir)
    page.sign_in(server)
    p = page.page
    p.goto(server.url + "/config/")
    assert p.locator(".config-counts .badge.bad").count() == 0  # nothing is refused in the stock file
    assert p.locator("#field-ENABLE_EMAIL_SIGNUP .badge.bad, #field-ENABLE_EMAIL_SIGNUP .badge.warn").count() == 0
    shoot(p, "env-supabase-fields", height=1400)
    shoot_top(p, "env-supabase-top")
    p.click("#field-JWT_SECRET button:has-text('Generate')")
    p.wait_for_selector("#config-form .banner-info")
    assert "re-signed ANON_KEY, SERVICE_ROLE_KEY" in p.inner_text("#config-form .banner-info")
    p.click("#config-form .config-toolbar button[type=submit]")
    p.wait_for_selector("#config-result")
    doc = EnvDocument.load(workdir / ".env")
    for key in ("ANON_KEY", "SERVICE_ROLE_KEY"):
        assert gen.jwt_verify(doc.get(key), doc.get("JWT_SECRET"))
    assert not page.console_errors, page.console_errors


def shoot_top(p, name: str) -> None:
    """The first screen only (full pages of 51 variables are too tall to look at): wide, phone, dark."""
    shots = os.environ.get("STACKPILOT_SHOTS")
    if not shots:
        return
    for scheme, width in (("light", 1400), ("light", 390), ("dark", 1400), ("dark", 390)):
        p.emulate_media(color_scheme=scheme)
        p.set_viewport_size({"width": width, "height": 1000})
        p.screenshot(path=str(Path(shots) / f"{name}-{scheme}-{width}.png"), caret="initial")
    p.emulate_media(color_scheme="light")
    p.set_viewport_size({"width": 1280, "height": 800})


def test_multiline_value_in_the_browser(tmp_path, server_factory, page):
    work = tmp_path / "pemstack"
    shutil.copytree(Path(__file__).resolve().parents[1] / "corpus" / "fixtures" / "pem-two-profiles", work)
    stock = (work / ".env").read_bytes()
    server = server_factory(stack_dir=work)
    page.sign_in(server)
    p = page.page
    p.goto(server.url + "/config/")
    assert p.evaluate("document.getElementById('in-APP_PRIVATE_KEY').tagName") == "TEXTAREA"
    shoot(p, "env-pem-fields", height=1400)
    p.fill("#in-LLM_MAX_TOKENS", "4001")
    p.click("#config-form .config-toolbar button[type=submit]")
    p.wait_for_selector("#config-result")
    assert (work / ".env").read_bytes() == stock.replace(b"LLM_MAX_TOKENS=4000", b"LLM_MAX_TOKENS=4001")
    assert not page.console_errors, page.console_errors
