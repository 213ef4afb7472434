"""A real image registry on loopback for the update tests (issue 14).

Debian's `docker-registry` package (the CNCF distribution registry) serves a throw-away storage
folder on a free 127.0.0.1 port. The engine accepts `localhost:<port>` without TLS (127.0.0.0/8 is an
insecure registry by default), so `docker push` / `images.get_registry_data` talk to it as to any
registry. `push(name, tag, text)` builds a tiny busybox-based image whose /version holds `text`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from tests.support.images import BUSYBOX_IMAGE
from tests.support.live import free_port
from tests.support.live import wait_for

BINARY = "/usr/bin/docker-registry"
CONFIG = """version: 0.1
log:
  level: {level}
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def available() -> bool:
    return Path(BINARY).exists()


class Registry:
    def __init__(self, level: str = "warn") -> None:
        self.level = level  # "info" logs every request (the bench counts them)
        self.port = free_port()
        self.host = f"localhost:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="sp-registry-"))
        self.proc: subprocess.Popen | None = None
        self.requests = 0

    def start(self) -> Registry:
        config = self.tmp / "config.yml"
        config.write_text(CONFIG.format(root=self.tmp / "data", port=self.port, level=self.level))
        self.log = open(self.tmp / "log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([BINARY, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT)

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(up, timeout=15, interval=0.1, message="registry answering")
        return self

    def push(self, repo: str, tag: str, text: str) -> str:
        """Build FROM the local busybox an image with /version = text, push it as repo:tag; its ref."""
        ref = f"{self.host}/{repo}:{tag}"
        with tempfile.TemporaryDirectory(prefix="sp-img-") as tmp:
            Path(tmp, "version").write_text(text + "\n")
            Path(tmp, "Dockerfile").write_text(f"FROM {BUSYBOX_IMAGE}\nCOPY version /version\n")
            subprocess.run(["docker", "build", "-q", "-t", ref, tmp], check=True, capture_output=True)
        subprocess.run(["docker", "push", ref], check=True, capture_output=True, timeout=60)
        return ref

    def manifest_requests(self) -> int:
        """Manifest requests served so far (from the info-level log)."""
        self.log.flush()
        text = (self.tmp / "log").read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "/manifests/" in line and "response completed" in line)

    def stop(self) -> None:
        """Stop serving (callable twice: a test may stop it to make it unreachable)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
