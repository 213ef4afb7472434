"""Fixtures of the hardening attacks: servers started from this checkout, cleaned up after."""

from __future__ import annotations

import pytest

from tests.hardening.attacks import CheckoutServer
from tests.support.live import ensure_user


@pytest.fixture
def attack_server(tmp_path_factory):
    """Factory: attack_server(limit=None, **env) -> a started CheckoutServer (stopped after)."""
    started: list[CheckoutServer] = []

    def factory(limit=None, **env: str) -> CheckoutServer:
        data = tmp_path_factory.mktemp("attack-data")
        ensure_user(data, "admin", "admin")
        srv = CheckoutServer(data_dir=data, env=env, limit=limit).start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
