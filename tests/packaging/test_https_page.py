"""The HTTPS page against a real Caddy container: the root certificate found in Caddy's data,
its fingerprint, the download, and the check that says which names fail and why."""

from __future__ import annotations

import hashlib
import ssl

import pytest
import requests

from tests.packaging.image import build_caddy_image
from tests.support.live import TEST_PASSWORD
from tests.support.live import ensure_user
from tests.support.live import wait_for
from tests.support.screens import shoot

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]

CADDYFILE = """{
\tskip_install_trust
}
manage.home.lan {
\ttls internal
\trespond "Stackpilot would be here" 200
}
"""

COMPOSE = """
services:
  caddy:
    image: {caddy}
    pull_policy: never
    volumes:
      - ./Caddyfile:/etc/caddy/Caddyfile:ro
      - caddy-data:/data
volumes:
  caddy-data:
"""


def test_https_page_offers_caddys_root_and_checks_every_name(open_stack, server_factory, page):
    stack = open_stack(
        {
            "docker-compose.yml": COMPOSE.replace("{caddy}", build_caddy_image()),
            "Caddyfile": CADDYFILE,
            ".env": "N8N_HOSTNAME=n8n.home.lan\nWEBUI_HOSTNAME=chat.example.com\nSEARXNG_HOSTNAME=:8006\n",
        }
    )
    stack.compose("up", "-d", "--pull", "never")
    server = server_factory(stack_dir=stack.dir, MANAGEMENT_HOSTNAME="manage.home.lan")
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/https/")
    pg.wait_for_selector(".fingerprint", timeout=30000)
    shown = pg.inner_text(".fingerprint").strip()

    # The download is Caddy's root: same fingerprint as shown, a CA certificate.
    s = requests.Session()
    s.trust_env = False
    ensure_user(server.data_dir, "admin", "admin")
    login = s.get(server.url + "/login", timeout=10)
    token = login.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    s.post(
        server.url + "/login",
        data={"username": "admin", "password": TEST_PASSWORD, "csrf_token": token},
        headers={"Origin": server.url},
        timeout=30,
    )
    cert = s.get(server.url + "/https/root.crt", timeout=20)
    assert cert.status_code == 200 and cert.headers["Content-Type"] == "application/x-x509-ca-cert"
    assert "attachment" in cert.headers["Content-Disposition"]
    der = ssl.PEM_cert_to_DER_cert(cert.text)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert shown.replace(":", "") == digest

    pg.click("text=Check HTTPS")
    pg.wait_for_selector(".https-results", timeout=30000)
    results = {
        li.query_selector(".finding-title code").inner_text(): li.get_attribute("class").split()[-1]
        for li in pg.query_selector_all(".https-results .finding")
    }
    text = pg.inner_text("#https-check")
    assert "manage.home.lan" in text and "HTTPS works" in text
    assert results == {"manage.home.lan": "ok", "n8n.home.lan": "bad", "chat.example.com": "bad"}, results
    assert ":8006" not in text, "a port form is not a name to check"
    assert "No certificate" in text
    assert not page.console_errors, page.console_errors
    wait_for(lambda: pg.is_visible(".https-results"), timeout=5)
    shoot(pg, "sidecar-https", height=1400)
