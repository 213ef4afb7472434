"""Fixtures for the packaging tests: our image built for real, stacks the container can read,
and Stackpilot started from the repo's own docker-compose.yml."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import PREFIX
from tests.conftest import ComposeProject
from tests.packaging.image import ROOT
from tests.packaging.image import build_image
from tests.packaging.image import compose_binary
from tests.packaging.image import docker_socket_gid
from tests.support.live import free_port
from tests.support.live import wait_for


@pytest.fixture(scope="session")
def real_compose() -> str:
    return compose_binary()


@pytest.fixture(scope="session")
def stackpilot_image(python_base_image) -> str:
    """Our Dockerfile built on the local Debian+Python base (cached by a hash of the context)."""
    return build_image(python_base_image)


class OpenProject(ComposeProject):
    """A compose project run by the real Compose binary (not the always-exit-0 wrapper)."""

    binary: str = "docker-compose"

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, "--project-directory", str(self.dir), "-p", self.project, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )


@pytest.fixture
def open_stack(busybox_image, real_compose):
    """Like make_stack, but in a world-readable folder: the container's user (uid 10001) must
    read the stack, and pytest's own temp folders are private to root."""
    made: list[OpenProject] = []

    def factory(files: dict[str, str], name: str | None = None) -> OpenProject:
        project = f"{PREFIX}-{name or secrets.token_hex(3)}"
        # The folder is named after the project: Stackpilot derives the project name from it.
        parent = Path(tempfile.mkdtemp(prefix=f"{project}-"))
        parent.chmod(0o755)
        root = parent / project
        root.mkdir(mode=0o755)
        proj = OpenProject(dir=root, project=project)
        proj.binary = real_compose
        for rel, text in files.items():
            proj.write(rel, text.replace("{image}", busybox_image))
        made.append(proj)
        return proj

    yield factory
    for proj in made:
        proj.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)
        # ./data made by the engine (as root) inside the stack: remove it all.
        shutil.rmtree(proj.dir.parent, ignore_errors=True)


@dataclass
class Sidecar:
    """Stackpilot running from the repo's docker-compose.yml as its own compose project."""

    project: str
    env: dict[str, str]
    override: Path
    binary: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, "-f", str(ROOT / "docker-compose.yml"), "-f", str(self.override), "-p", self.project, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            env=self.env,
        )

    def container_id(self) -> str:
        return self.compose("ps", "-a", "-q", "stackpilot").stdout.strip()

    def inspect(self) -> dict:
        out = subprocess.run(["docker", "inspect", self.container_id()], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)[0]

    def health_status(self) -> str:
        return self.inspect()["State"].get("Health", {}).get("Status", "none")

    def exec(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "exec", self.container_id(), *args], capture_output=True, text=True, check=check, timeout=120
        )

    def health(self) -> dict:
        return requests.get(self.url + "/api/health", timeout=5).json()

    def wait_healthy(self, timeout: float = 60) -> None:
        def healthy():
            status = self.health_status()
            if status == "unhealthy":
                raise AssertionError(f"container unhealthy:\n{self.compose('logs', check=False).stdout}")
            return status == "healthy"

        wait_for(healthy, timeout=timeout, interval=0.2, message="docker to report healthy")


@pytest.fixture
def sidecar_factory(stackpilot_image, real_compose, tmp_path):
    """Factory: sidecar_factory(stack_dir, **env) -> a started Sidecar (taken down with -v after)."""
    started: list[Sidecar] = []

    def factory(stack_dir: Path, up: bool = True, **extra: str) -> Sidecar:
        project = f"{PREFIX}-sp{secrets.token_hex(3)}"
        port = free_port()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("STACKPILOT_", "MANAGEMENT_", "DOCKER_", "STACK_"))
        }
        env.update(
            {
                "STACKPILOT_IMAGE": stackpilot_image,
                "STACKPILOT_PORT": str(port),
                "STACK_DIR": str(stack_dir),
                "DOCKER_GID": str(docker_socket_gid()),
            }
        )
        env.update(extra)
        # Probe every second instead of every 10 s, so "healthy" is seen without waiting.
        override = tmp_path / f"{project}.override.yml"
        override.write_text("services:\n  stackpilot:\n    healthcheck:\n      interval: 1s\n")
        sidecar = Sidecar(project=project, env=env, override=override, binary=real_compose, port=port)
        started.append(sidecar)
        if up:
            sidecar.compose("up", "-d", "--no-build", "--pull", "never")
        return sidecar

    yield factory
    for sidecar in started:
        sidecar.compose("down", "-v", "--remove-orphans", "-t", "10", check=False)
