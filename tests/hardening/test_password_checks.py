"""Items 1-3 of issue 12 against the real server: memory-bounded password checks, throttles that
slow down the guessing address and never lock the owner out, and no race past the limit."""

from __future__ import annotations

import pytest

from tests.hardening.attacks import WRONG
from tests.hardening.attacks import MemoryLimit
from tests.hardening.attacks import client
from tests.hardening.attacks import concurrent_sign_ins
from tests.hardening.attacks import lockout
from tests.hardening.attacks import racing_guesses
from tests.hardening.attacks import sign_in
from tests.support.live import TEST_PASSWORD
from tests.support.live import ensure_user


def test_hundred_concurrent_sign_ins_fit_the_shipped_memory_limit(attack_server):
    """Before: 4 concurrent checks took 4 x 128 MiB and the 512 MiB container was OOM-killed."""
    if not MemoryLimit.available():
        pytest.fail("cgroup v1 memory controller not writable: cannot set the 512 MiB limit")
    with MemoryLimit(512) as limit:
        server = attack_server(limit=limit)
        result = concurrent_sign_ins(server, 100)
        peak = limit.peak_mib
        print(
            f"\n100 concurrent sign-ins under 512 MiB: {result['statuses']} in {result['seconds']:.1f} s; "
            f"cgroup peak {peak:.0f} MiB, process RSS peak {server.rss_peak_mib():.0f} MiB, "
            f"OOM kills {limit.oom_kills}"
        )
        assert server.alive() and limit.oom_kills == 0
        assert peak < 400  # two checks in flight (256 MiB) plus the process, with room
        assert set(result["statuses"]) <= {302, 429}  # signed in, or told to retry: never a 5xx
        assert result["statuses"].get(302, 0) >= 2
        # The survivors still serve, and a retry after the burst signs in.
        s, csrf = client(server)
        assert sign_in(server, s, csrf, "admin", TEST_PASSWORD) == 302


def test_attacker_failing_fifty_times_does_not_lock_the_owner_out(attack_server):
    server = attack_server()
    result = lockout(server, attacker="127.0.0.2", owner="127.0.0.3", failures=50)
    print(f"\nattacker x50: {result['attacker']}; owner from another address: {result['owner']}")
    assert result["owner"] == 302
    assert result["attacker"].get(422, 0) <= 8 and result["attacker"].get(429, 0) >= 42
    # The throttle lives in SQLite: a restart does not hand the attacker fresh attempts.
    server.stop()
    server.start()
    s, csrf = client(server, "127.0.0.2")
    again = [sign_in(server, s, csrf, "admin", WRONG) for _ in range(5)]
    assert again.count(422) <= 1 and again.count(429) >= 4, again


def test_concurrent_guesses_cannot_race_past_the_limit(shared_server):
    server = shared_server
    statuses = racing_guesses(server, "127.0.0.4", 20)
    print(f"\n20 concurrent wrong passwords from one address: {statuses}")
    # Exactly the five free attempts got past the throttle (counted before the check).
    assert statuses.get("checked", 0) + statuses.get("busy", 0) == 5 and statuses.get("throttled") == 15


def test_account_page_current_password_check_is_throttled(shared_server):
    server = shared_server
    ensure_user(server.data_dir, "victim", "viewer")
    s = server.session("victim", "viewer")  # a stolen session guessing the password to change it
    codes = []
    for i in range(12):
        r = s.post(
            server.url + "/account/password",
            timeout=60,
            data={
                "current": f"guess-number-{i:02d}",
                "new": "a-new-long-password",
                "confirm": "a-new-long-password",
                "csrf_token": s.csrf,
            },
        )
        codes.append(r.status_code)
    assert codes.count(422) == 5 and codes.count(429) == 7, codes
    assert "Wait" in r.text
