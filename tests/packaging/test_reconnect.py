"""The page comes back by itself after its proxy restarts: real Caddy in front of the real server,
stopped under an open page and started again (what a proxy recreate does to the browser)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.packaging.image import ROOT
from tests.packaging.test_caddy import CADDY
from tests.support.live import TEST_PASSWORD
from tests.support.live import ensure_user
from tests.support.live import free_port
from tests.support.live import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class PlainCaddy:
    """The repo's Caddyfile on a plain-HTTP port (MANAGEMENT_HOSTNAME=":<port>") in front of upstream."""

    def __init__(self, workdir, upstream: str) -> None:
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(workdir),
            "XDG_DATA_HOME": str(workdir / "d"),
            "XDG_CONFIG_HOME": str(workdir / "c"),
            "CADDY_ADMIN": "off",
            "MANAGEMENT_HOSTNAME": f":{self.port}",
            "CADDY_HTTP_PORT": str(free_port()),
            "CADDY_HTTPS_PORT": str(free_port()),
            "STACKPILOT_UPSTREAM": upstream,
        }
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> PlainCaddy:
        self.proc = subprocess.Popen(
            [CADDY, "run", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=20, interval=0.1, message="caddy to listen")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_page_reconnects_by_itself_after_the_proxy_comes_back(server, page, tmp_path):
    proxy = PlainCaddy(tmp_path, f"127.0.0.1:{server.port}").start()
    try:
        via = f"http://127.0.0.1:{proxy.port}"
        pg = page.page
        ensure_user(server.data_dir, "admin", "admin")
        pg.goto(via + "/login")
        pg.fill("#username", "admin")
        pg.fill("#password", TEST_PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_load_state()
        pg.evaluate(
            "window.__back = 0; document.body.addEventListener('stackpilot:reconnected', "
            "function () { window.__back += 1; })"
        )
        proxy.stop()  # the proxy is recreated: gone for a while
        pg.evaluate("() => { htmx.ajax('GET', '/api/health', {swap: 'none'}).catch(function () {}); }")
        pg.wait_for_selector(".alert-offline", timeout=10000)
        wait_for(
            lambda: "Reconnecting" in pg.inner_text(".alert-offline"),
            timeout=10,
            interval=0.2,
            message="the page to say it is reconnecting",
        )
        proxy.start()  # back, on the same address
        pg.wait_for_selector(".alert-offline", state="detached", timeout=15000)
        assert pg.evaluate("window.__back") == 1
        # htmx and Chromium log the failed request itself; nothing else may complain.
        others = [
            e
            for e in page.console_errors
            if not e.startswith(("htmx:", "Failed to load resource")) and "ERR_CONNECTION_REFUSED" not in e
        ]
        assert not others, others
        page.console_errors.clear()
    finally:
        proxy.stop()
