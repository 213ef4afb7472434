"""Engine 2 for the engines tests: a second real dockerd over TLS and SSH, started once per run.

Other test areas get the same engine with `from tests.support.engine2 import shared_engine2`.
"""

from __future__ import annotations

import pytest

from tests.support.engine2 import shared_engine2


@pytest.fixture(scope="session")
def engine2(busybox_image):
    """The second engine with the suite's busybox image; stopped (and wiped) when the run ends."""
    try:
        e2 = shared_engine2((busybox_image,))
    except RuntimeError as e:
        pytest.fail(f"engine 2 could not be started: {e}")
    print(f"\nengine 2 (dockerd + sshd) up in {e2.started_in:.1f} s")
    return e2


@pytest.fixture
def tls_form(engine2) -> dict[str, str]:
    """The add-engine form for engine 2 over TLS, with the good client certificate pasted."""
    c = engine2.certs
    return {
        "url": engine2.tcp_url,
        "ca": c.text("ca.pem"),
        "cert": c.text("client-cert.pem"),
        "key": c.text("client-key.pem"),
    }
