"""`docker compose config` accepts the repo's docker-compose.yml and a stack that includes
docker/stackpilot.yml, and refuses them with a clear reason when a required value is missing."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.packaging.image import ROOT
from tests.packaging.image import context_files

pytestmark = [pytest.mark.docker]

INCLUDING_STACK = """
include:
  - {include}
services:
  web:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    volumes:
      - ./data:/data
"""


def config(binary: str, args: list[str], env: dict[str, str], cwd=None) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("STACKPILOT_", "MANAGEMENT_", "DOCKER_", "STACK_"))
    }
    return subprocess.run(
        [binary, *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=cwd,
        timeout=60,
    )


def test_repo_compose_file_is_valid_and_safe_by_default(real_compose, tmp_path):
    out = config(
        real_compose, ["-f", str(ROOT / "docker-compose.yml")], {"STACK_DIR": str(tmp_path), "DOCKER_GID": "998"}
    )
    assert out.returncode == 0, out.stderr
    svc = json.loads(out.stdout)["services"]["stackpilot"]
    assert svc["ports"][0]["host_ip"] == "127.0.0.1" and svc["ports"][0]["target"] == 9000
    assert svc["group_add"] == ["998"]
    assert svc["environment"]["STACKPILOT_STACK_DIR"] == str(tmp_path)
    binds = {v["target"]: v["source"] for v in svc["volumes"]}
    assert binds[str(tmp_path)] == str(tmp_path), "the stack must be mounted at its own path"
    assert binds["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert binds["/data"] == "stackpilot-data"
    assert svc["restart"] == "unless-stopped"
    assert svc["healthcheck"]["test"][0] == "CMD"
    assert svc["deploy"]["resources"]["limits"]["memory"]
    assert svc["logging"]["options"]["max-size"]
    assert svc["read_only"] is True


def test_lan_binding_and_rootless_socket_are_settings(real_compose, tmp_path):
    sock = "/run/user/1000/docker.sock"
    out = config(
        real_compose,
        ["-f", str(ROOT / "docker-compose.yml")],
        {
            "STACK_DIR": str(tmp_path),
            "DOCKER_GID": "0",
            "STACKPILOT_BIND": "0.0.0.0",
            "DOCKER_SOCKET": sock,
            "STACKPILOT_UID": "0",
            "STACKPILOT_GID": "0",
        },
    )
    assert out.returncode == 0, out.stderr
    svc = json.loads(out.stdout)["services"]["stackpilot"]
    assert svc["ports"][0]["host_ip"] == "0.0.0.0"
    assert {v["target"]: v["source"] for v in svc["volumes"]}["/var/run/docker.sock"] == sock
    assert svc["user"] == "0:0"


@pytest.mark.parametrize("missing", ["STACK_DIR", "DOCKER_GID"])
def test_repo_compose_file_names_a_missing_setting(real_compose, tmp_path, missing):
    env = {"STACK_DIR": str(tmp_path), "DOCKER_GID": "998"}
    del env[missing]
    out = config(real_compose, ["-f", str(ROOT / "docker-compose.yml")], env)
    assert out.returncode != 0
    assert missing in out.stderr


def test_stack_including_the_docker_folder_file_is_valid(real_compose, make_stack):
    stack = make_stack(
        {
            "docker-compose.yml": INCLUDING_STACK.replace("{include}", str(ROOT / "docker" / "stackpilot.yml")),
        }
    )
    stack.write(".env", f"STACK_DIR={stack.dir}\nDOCKER_GID=998\nMANAGEMENT_HOSTNAME=manage.example.test\n")
    out = config(real_compose, ["--project-directory", str(stack.dir), "-p", stack.project], {})
    assert out.returncode == 0, out.stderr
    model = json.loads(out.stdout)
    svc = model["services"]["stackpilot"]
    # One project, one default network: the stack's Caddy reaches stackpilot:9000.
    assert set(model["services"]) == {"stackpilot", "web"}
    assert svc["networks"] == model["services"]["web"]["networks"]
    assert "ports" not in svc and svc["expose"] == ["9000"]
    assert svc["build"]["context"] == str(ROOT)
    binds = {v["target"]: v["source"] for v in svc["volumes"]}
    assert binds[str(stack.dir)] == str(stack.dir)
    assert svc["environment"]["STACKPILOT_STACK_DIR"] == str(stack.dir)
    assert model["services"]["web"]["volumes"][0]["source"] == str(stack.dir / "data")


def test_the_docker_folder_holds_no_python():
    """A docker/ package would shadow the Docker SDK for anything run from the repo root."""
    assert not list((ROOT / "docker").rglob("*.py"))


def test_context_matches_dockerignore(tmp_path, stackpilot_image):
    """The hash that names the cached test image covers every file the build sees."""
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "find",
            stackpilot_image,
            "/srv/stackpilot",
            "-type",
            "f",
            "-not",
            "-name",
            "*.pyc",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    in_image = {p.removeprefix("/srv/stackpilot/") for p in out}
    hashed = {str(p.relative_to(ROOT)) for p in context_files()}
    assert in_image <= hashed, in_image - hashed
