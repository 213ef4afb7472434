"""Fixtures of the many-stacks tests: a stacks root folder whose subfolders are compose projects
named with the session prefix (so the leftover check covers them), taken down after the test."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PREFIX
from tests.conftest import compose_bin

SLEEPER = (
    "services:\n  {service}:\n    image: {image}\n    command: ['sh', '-c', 'while true; do echo {service}-says-hi; "
    "sleep 0.3; done']\n    stop_grace_period: 1s\n"
)


@dataclass
class RootStack:
    dir: Path
    project: str

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*compose_bin(), "--project-directory", str(self.dir), "-p", self.project, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )


@pytest.fixture
def stacks_root(tmp_path_factory, busybox_image):
    """Factory: stacks_root(n) -> (root folder, [RootStack]); each stack one busybox service."""
    made: list[RootStack] = []
    root = tmp_path_factory.mktemp("stacks-root")

    def factory(count: int, service: str = "talker") -> tuple[Path, list[RootStack]]:
        out = []
        for _ in range(count):
            project = f"{PREFIX}-{secrets.token_hex(3)}"
            folder = root / project
            folder.mkdir()
            (folder / "compose.yaml").write_text(SLEEPER.format(service=service, image=busybox_image))
            out.append(RootStack(folder, project))
        made.extend(out)
        return root, out

    yield factory
    for stack in made:
        if stack.dir.is_dir():
            stack.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)
        else:
            ids = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
            subprocess.run(["docker", "network", "rm", f"{stack.project}_default"], capture_output=True)
