"""The engines page in a real browser against the real server: add engine 2 over TLS and over SSH
from the form, read the check, see a dead engine's card say why; screenshots of it."""

from __future__ import annotations

import pytest

from app.engine.remote import own_ssh_key
from tests.support.engine2 import free_port
from tests.support.screens import shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def _add(pg, name: str, url: str, pems: dict[str, str] | None = None) -> None:
    pg.goto(pg.url.split("/engines")[0] + "/engines/")
    pg.fill("#engine-name", name)
    pg.fill("#engine-url", url)
    if pems:
        pg.click("summary:has-text('TLS certificates')")
        for field, text in pems.items():
            pg.fill(f"#engine-{field}", text)
    pg.click("button:has-text('Add and check')")
    pg.wait_for_selector(f"#engine-{name.replace(' ', '-')} .findings", timeout=60_000)


def test_engines_page_adds_tls_and_ssh_engines_and_shows_a_dead_one(server, page, engine2):
    engine2.authorize(own_ssh_key(server.data_dir)[1])
    pg = page.page
    page.sign_in(server)
    pg.goto(server.url + "/engines/")
    c = engine2.certs
    pems = {"ca": c.text("ca.pem"), "cert": c.text("client-cert.pem"), "key": c.text("client-key.pem")}

    _add(pg, "nas tls", engine2.tcp_url, pems)
    card = pg.locator("#engine-nas-tls")
    assert card.locator(".finding.bad").count() == 0
    assert "Docker Engine 20.10" in card.locator(".findings").inner_text()

    _add(pg, "nas ssh", engine2.ssh_url)
    findings = pg.locator("#engine-nas-ssh .findings").inner_text()
    assert "SSH login" in findings and "the Compose CLI reaches it" in findings
    assert pg.locator("#engine-nas-ssh .finding.bad").count() == 0

    _add(pg, "old box", f"tcp://127.0.0.1:{free_port()}", pems)
    dead = pg.locator("#engine-old-box .finding.bad").inner_text()
    assert "nothing accepts connections at 127.0.0.1" in dead

    # A fresh load: each card asks for its own status; the dead one says why, the others answer.
    pg.goto(server.url + "/engines/")
    pg.wait_for_selector("#engine-old-box .badge.bad", timeout=60_000)
    pg.wait_for_selector("#engine-nas-ssh .badge.ok", timeout=60_000)
    pg.wait_for_selector("#engine-local .badge.ok", timeout=60_000)
    assert "nothing accepts connections" in pg.locator("#engine-old-box .engine-reason").inner_text()
    pg.click("#engine-nas-tls button:has-text('Check')")
    pg.wait_for_selector("#engine-nas-tls .finding.ok", timeout=60_000)
    pg.click("summary:has-text('SSH key')")
    shoot(pg, "engines", height=1400)

    # A wrong key is refused on the form, in words, and what was typed stays.
    pg.fill("#engine-name", "bad pair")
    pg.fill("#engine-url", engine2.tcp_url)
    pg.click("summary:has-text('TLS certificates')")
    for field, text in {**pems, "key": c.text("stranger-key.pem")}.items():
        pg.fill(f"#engine-{field}", text)
    pg.click("button:has-text('Add and check')")
    pg.wait_for_selector("#engine-error")
    assert "does not belong to the client certificate" in pg.locator("#engine-error").inner_text()
    assert pg.input_value("#engine-name") == "bad pair"
    assert pg.locator("#engine-key[aria-invalid=true]").count() == 1
    shoot(pg, "engines-error", height=1400)

    pg.once("dialog", lambda d: d.accept())
    pg.click("#engine-old-box button:has-text('Remove')")
    pg.wait_for_selector("#engine-old-box", state="detached")
    assert not [e for e in page.console_errors if "favicon" not in e and "status of 422" not in e], page.console_errors
