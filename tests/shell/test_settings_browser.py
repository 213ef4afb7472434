"""In a real browser: the admin sets the shell's idle timeout on the Users page (a bad value is refused
in place), then the terminal page says it and runs a typed command in xterm."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store import Store
from tests.shell.shots import shoot_three

pytestmark = [pytest.mark.docker, pytest.mark.browser]

FITTED = """() => {
  const screen = document.querySelector('#shell-term .xterm-screen');
  const box = document.querySelector('#shell-term');
  if (!screen || !box) return false;
  const a = screen.getBoundingClientRect().width, b = box.getBoundingClientRect().width;
  return a > b * 0.85 && a <= b;
}"""


def test_set_the_timeout_then_use_the_terminal(shell_server, box, page):
    server = shell_server(box)
    page.sign_in(server)
    pg = page.page
    pg.goto(server.url + "/users")
    pg.fill("#shell-idle", "0")
    pg.click("#shell-settings-save")
    pg.wait_for_selector("#shell-settings-error")
    assert "from 1 to 1440" in pg.inner_text("#shell-settings-error")
    assert pg.input_value("#shell-idle") == "0"  # what was typed stays to be corrected
    assert Store(Path(server.data_dir) / "stackpilot.sqlite3").get_setting("shell", None) is None
    pg.fill("#shell-idle", "7")
    pg.click("#shell-settings-save")
    pg.wait_for_selector("#shell-settings [role=status]:has-text('Saved')")
    shoot_three(pg, "shell-settings", height=700)

    pg.goto(server.url + "/shell/box")
    pg.wait_for_selector("#shell-state[data-state=live]", timeout=15000)
    assert "Closes after 7 min" in pg.inner_text(".shell-foot")
    pg.click("#shell-term")
    pg.keyboard.type("cd /srv && echo typed-$((20+3)) && ls -l /bin | head -6")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#shell-term .xterm-rows:has-text('typed-23')", timeout=10000)
    shoot_three(pg, "terminal", height=820, settle=lambda p: p.wait_for_function(FITTED, timeout=5000))
    # the refused value's 422 is the only console line (Chromium logs every 4xx answer)
    assert [e for e in page.console_errors if "status of 422" not in e] == []
