"""Claiming the first admin with the one-time setup token, against the real server."""

from __future__ import annotations

import re
import stat
import threading

import requests

from app.store import Store
from tests.support.live import LiveServer
from tests.support.live import SourceAddressAdapter

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
PASSWORD = "a-long-enough-password"


def _start_unclaimed(tmp_path, **env) -> LiveServer:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return LiveServer(data_dir=data, env=env).start()


def _claim_session(srv: LiveServer) -> tuple[requests.Session, str]:
    s = requests.Session()
    page = s.get(srv.url + "/setup/", timeout=10)
    assert page.status_code == 200 and "Claim the admin account" in page.text
    return s, CSRF_RE.search(page.text).group(1)


def _claim(srv, s, csrf, token, username="owner", password=PASSWORD):
    return s.post(
        srv.url + "/setup/claim",
        data={"csrf_token": csrf, "token": token, "username": username, "password": password},
        headers={"Origin": srv.url},
        allow_redirects=False,
        timeout=60,
    )


def test_token_is_printed_and_kept_private_and_renewed_each_start(tmp_path):
    srv = _start_unclaimed(tmp_path)
    try:
        path = srv.data_dir / "setup-token"
        token = path.read_text().strip()
        assert len(token) >= 43  # 256 bits, url-safe base64
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert token in srv.log() and f"/setup/#token={token}" in srv.log()
    finally:
        srv.stop()
    srv.start()
    try:
        renewed = (srv.data_dir / "setup-token").read_text().strip()
        assert renewed != token
        s, csrf = _claim_session(srv)
        assert _claim(srv, s, csrf, token).status_code == 403  # the old one is dead
    finally:
        srv.stop()


def test_wrong_token_is_refused_then_rate_limited(tmp_path):
    srv = _start_unclaimed(tmp_path)
    try:
        s, csrf = _claim_session(srv)
        r = _claim(srv, s, csrf, "not-the-token")
        assert r.status_code == 403 and "not right" in r.text
        for _ in range(9):
            _claim(srv, s, csrf, "still-not-it")
        token = (srv.data_dir / "setup-token").read_text().strip()
        r = _claim(srv, s, csrf, token)
        assert r.status_code == 429 and re.search(r"Wait [1-5] seconds?", r.text)
        assert Store(srv.data_dir / "stackpilot.sqlite3").count_users() == 0
        assert (srv.data_dir / "setup-token").exists()
        # Only that address waits: the owner at another one claims with the right token.
        owner = requests.Session()
        owner.mount("http://", SourceAddressAdapter("127.0.0.2"))
        page = owner.get(srv.url + "/setup/", timeout=10)
        r = _claim(srv, owner, CSRF_RE.search(page.text).group(1), token)
        assert r.status_code == 302 and r.headers["Location"].endswith("/setup/")
    finally:
        srv.stop()


def test_short_password_is_refused_without_using_the_token(tmp_path):
    srv = _start_unclaimed(tmp_path)
    try:
        s, csrf = _claim_session(srv)
        token = (srv.data_dir / "setup-token").read_text().strip()
        r = _claim(srv, s, csrf, token, password="short")
        assert r.status_code == 422 and "at least 12" in r.text
        assert (srv.data_dir / "setup-token").exists()
    finally:
        srv.stop()


def test_fifty_concurrent_claims_make_exactly_one_admin(tmp_path):
    srv = _start_unclaimed(tmp_path)
    try:
        token = (srv.data_dir / "setup-token").read_text().strip()
        prepared = [_claim_session(srv) for _ in range(50)]
        barrier = threading.Barrier(50)
        results: list[tuple[int, str]] = []

        def go(i, s, csrf):
            barrier.wait()
            r = _claim(srv, s, csrf, token, username=f"owner{i}")
            results.append((r.status_code, r.headers.get("Location", "")))

        threads = [threading.Thread(target=go, args=(i, s, c)) for i, (s, c) in enumerate(prepared)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(results) == 50
        winners = [r for r in results if r[1].endswith("/setup/")]
        assert len(winners) == 1, results
        store = Store(srv.data_dir / "stackpilot.sqlite3")
        assert store.count_users() == 1 and store.count_users("admin") == 1
        assert not (srv.data_dir / "setup-token").exists()
        # Everyone else is sent to sign in, and the setup page is closed to anonymous users now.
        assert all(loc.endswith("/login") for _code, loc in results if not loc.endswith("/setup/"))
        r = requests.get(srv.url + "/setup/", allow_redirects=False, timeout=10)
        assert r.status_code == 302 and "/login" in r.headers["Location"]
    finally:
        srv.stop()
    earlier = len(srv.log())
    srv.start()  # claimed: no new token at the next start
    try:
        assert not (srv.data_dir / "setup-token").exists()
        assert "setup token" not in srv.log()[earlier:] and "serving" in srv.log()[earlier:]
    finally:
        srv.stop()


def test_password_file_creates_the_admin_and_skips_the_claim(app_factory, tmp_path):
    secret = tmp_path / "admin-password"
    secret.write_text(PASSWORD + "\n")
    app = app_factory(STACKPILOT_ADMIN_PASSWORD_FILE=str(secret), STACKPILOT_ADMIN_USER="boss")
    store = app.extensions["stackpilot.store"]
    assert [(u.username, u.role) for u in store.users()] == [("boss", "admin")]
    assert not (app.config["SETTINGS"].data_dir / "setup-token").exists()
    r = app.test_client().get("/setup/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
