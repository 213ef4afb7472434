"""Steps the wizard tests share when they drive it through HTTP."""

from __future__ import annotations

from tests.support.live import wait_for


def launch_and_wait(client, timeout: float = 120):
    """Start the launch and poll its progress until it ends; returns the last progress response."""
    assert client.post("/setup/launch").headers["Location"].endswith("/setup/launch")

    def finished():
        r = client.get("/setup/launch/progress")
        return r if r.status_code == 286 or r.headers.get("HX-Redirect") else None

    return wait_for(finished, timeout=timeout, interval=0.5, message="the launch to end")
