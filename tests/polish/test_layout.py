"""The everyday screens in Chromium against the real server, on a seeded stack of 31 services:
the table holds its shape (names unbroken, one line per row, a folded port range), port links only
where they can work, and no page wider than a 390 px phone."""

from __future__ import annotations

import pytest

from app.store import Store
from tests.polish import stacks
from tests.support.live import TEST_PASSWORD
from tests.support.live import free_port
from tests.support.live import wait_for
from tests.support.screens import shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]

# Pages owned by other areas that overflow at 390 px today (reported in the issue-18 note, not
# fixed here); the test fails if one of them gets fixed (drop it) or another page starts to overflow.
KNOWN_OVERFLOW: set[str] = set()


# A name that is not loopback for the app (as if the browser were on another machine); the
# session's Chromium maps *.stackpilot.test to 127.0.0.1, so no packet leaves loopback.
LAN_NAME = "lan.stackpilot.test"


@pytest.fixture
def seeded(make_stack, server_factory):
    web, db, cache = free_port(), free_port(), free_port()
    proj = make_stack({"docker-compose.yml": stacks.seeded(web, db, cache)}, name="polish")
    proj.compose("up", "-d", "web", "db", "cache")
    # opened under a non-loopback name, as from another machine (Chromium maps it to loopback)
    server = server_factory(stack_dir=proj.dir, STACKPILOT_ALLOWED_HOSTS=LAN_NAME)
    server.lan = LAN_NAME
    Store(server.data_dir / "stackpilot.sqlite3").set_setting(
        "stack", {"project": proj.project, "files": [], "profiles": []}
    )
    return proj, server, (web, db, cache)


def test_table_shape_ports_and_narrow_pages(seeded, page):
    proj, server, (web, db, cache) = seeded
    base = f"http://{server.lan}:{server.port}"
    server.url_base = base
    pg = page.page
    page.sign_in(server)
    pg.goto(base + "/login")
    if "/login" in pg.url:
        pg.fill("#username", "admin")
        pg.fill("#password", TEST_PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_load_state()
    pg.set_viewport_size({"width": 1400, "height": 900})
    pg.goto(base + "/services")
    pg.wait_for_selector("#r-web-state .badge[data-state=running]", timeout=30_000)
    assert pg.locator("tr.svc-row").count() >= 28

    # names: never broken inside a word; a long one ends in an ellipsis and has its full name
    names = pg.eval_on_selector_all(
        ".svc-name",
        """els => els.map(e => ({
        name: e.textContent, lines: e.getClientRects().length, h: e.getBoundingClientRect().height,
        lh: parseFloat(getComputedStyle(e).lineHeight) || 20, clipped: e.scrollWidth > e.clientWidth,
        title: e.title}))""",
    )
    for n in names:
        assert n["lines"] == 1 and n["h"] < n["lh"] * 1.5, n
    long = next(n for n in names if n["name"].startswith("analytics-pipeline"))
    assert long["clipped"] and long["title"] == long["name"]
    # one line per row on a wide screen (the tallest row is no taller than the shortest + badge slack)
    heights = pg.eval_on_selector_all("tr.svc-row", "rows => rows.map(r => r.getBoundingClientRect().height)")
    assert max(heights) <= min(heights) + 12, heights

    # ports: the range folded with its list on demand; links only where they can work
    ranger = pg.locator("#r-ranger-ports")
    assert "8080–8099→8080–8099" in ranger.inner_text() and ranger.locator("a").count() == 0  # not running
    ranger.locator("details.port-list summary").click()
    assert ranger.locator("details.port-list li").count() == 20
    assert pg.locator("#r-web-ports a").get_attribute("href") == f"http://{server.lan}:{web}/"
    assert pg.locator("#r-db-ports a").count() == 0
    assert "on the server only" in pg.locator("#r-db-ports").inner_text()
    assert pg.locator("#r-cache-ports a").count() == 0
    assert pg.locator("#r-cache-ports button.copy-port").get_attribute("data-copy") == f"{server.lan}:{cache}"
    pg.locator("#r-cache-ports button.copy-port").click()
    wait_for(
        lambda: pg.locator("#r-cache-ports button.copy-port").get_attribute("data-said") in ("copied", "copy failed"),
        timeout=5,
        message="copy answered",
    )
    # logs are not offered for a container never created
    assert pg.locator("#menu-ranger a:has-text('Logs')").count() == 0
    assert pg.locator("#menu-web a:has-text('Logs')").count() == 1
    # the header says which files and profiles are active, linking to Stack settings
    files = pg.locator("#stack-files")
    assert "docker-compose.yml" in files.inner_text() and "none active" in files.inner_text()
    assert files.locator("a").get_attribute("href").endswith("/stack/settings")

    # Down with "delete volumes" ticked asks first, naming the volume; refusing runs nothing
    asked = []
    pg.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    pg.click("#act-down summary")
    pg.check("#act-down input[name=volumes]")
    pg.click("#act-down button[data-action=down]")
    wait_for(lambda: asked, timeout=5, message="the confirmation")
    assert f"{proj.project}_pgdata" in asked[0] and "delete" in asked[0]
    pg.wait_for_timeout(300)
    assert pg.locator(".run-panel").count() == 0
    pg.click("#act-down summary")

    shoot(pg, "polish-services", height=1400)

    # the graph: fitted to its frame, no two drawn labels on each other (as Chromium draws them)
    pg.goto(base + "/graph/")
    pg.wait_for_selector("svg.depgraph")
    frame, drawn = pg.evaluate("""() => [document.getElementById('graph-frame').getBoundingClientRect().width,
        document.querySelector('svg.depgraph').getBoundingClientRect().width]""")
    assert drawn <= frame, (drawn, frame)
    boxes = pg.eval_on_selector_all(
        "text.edge-label",
        """els => els.map(e => {
        const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })""",
    )
    assert len(boxes) >= 10
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]), (a, b)
    pg.click("#graph-zoom")  # actual size: unscaled, panned by scrolling inside the frame
    assert pg.evaluate("""() => { const s = document.querySelector('svg.depgraph');
        return Math.round(s.getBoundingClientRect().width) === s.width.baseVal.value; }""")
    pg.click("#graph-zoom")
    shoot(pg, "polish-graph", height=1000)
    # an action through the UI shows on the Activity page with its user, result and output
    pg.goto(base + "/services")
    pg.click("#menu-web summary")
    pg.click("#menu-web button[data-action=restart]")
    pg.wait_for_selector(".run-status .badge:has-text('exit code 0')", timeout=60_000)
    pg.goto(base + "/activity/")
    wait_for(
        lambda: pg.reload() and "service.restart" in pg.locator("tr.audit-row").first.inner_text(),
        timeout=10,
        message="the restart in the activity",
    )
    first = pg.locator("tr.audit-row").first
    assert "admin" in first.inner_text() and first.locator(".result-ok").count() == 1
    first.locator("a.run-link").click()
    pg.wait_for_selector("#run-output .run-panel")
    shoot(pg, "polish-activity", height=900)

    # every page of the stack at 390 px: nothing wider than the viewport
    pg.set_viewport_size({"width": 390, "height": 800})
    paths = [
        "/",
        "/services",
        "/logs/",
        "/logs/web",
        "/graph/",
        "/activity/",
        "/config/",
        "/setup/",
        "/stack/settings",
        "/account",
        "/users",
        "/engines/",
        "/https/",
        "/backups/",
        f"/s/{proj.project}/services",
    ]
    over, failed = {}, []
    pg.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    for path in paths:
        response = pg.goto(base + path)
        if response is None or response.status >= 400:
            continue
        pg.wait_for_load_state("networkidle")
        width = pg.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if width[0] > width[1]:
            over[path] = width
    assert set(over) == KNOWN_OVERFLOW, over
    noise = ("favicon", "Cross-Origin-Opener-Policy")  # plain HTTP on a LAN address: a warning, not ours
    assert not [e for e in page.console_errors if not any(n in e for n in noise)], (page.console_errors, failed)
