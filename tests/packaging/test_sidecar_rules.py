"""The way in and host paths, as rules: the proxy service is spared by stack actions and asked
about before it goes; `~` bind sources are refused in a container without the host's HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InvalidInput
from app.stack import Stack
from app.stack import hostpaths
from app.stack.actions import DOWNTIME_SECONDS
from app.stack.actions import ProxyAtRisk
from app.stack.actions import plan_service
from app.stack.actions import plan_stack
from app.stack.model import ComposeModel
from app.stack.model import Service
from app.wizard import preflight
from app.wizard import recipe as recipes


def model(*names: str) -> ComposeModel:
    return ComposeModel(project="localai", services={n: Service(name=n) for n in names})


STACK = Stack(directory=Path("/srv/localai"), project="localai")


@pytest.mark.parametrize(("action", "verb"), [("down", "rm"), ("restart", "restart")])
def test_stack_down_and_restart_keep_the_proxy_and_stackpilot(action, verb):
    plan = plan_stack(STACK, action, model("caddy", "n8n", "stackpilot"), own="stackpilot", proxy="caddy")
    assert plan.args[0] == verb
    assert plan.args[plan.args.index("--") + 1 :] == ("n8n",)
    assert "caddy" in plan.note and "proxy" in plan.note


def test_stack_down_insisted_takes_the_proxy_too():
    plan = plan_stack(STACK, "down", model("caddy", "n8n"), proxy="caddy", insist=True)
    assert plan.args == ("down",)


def test_recreate_after_an_env_change_skips_the_proxy_and_says_so():
    plan = plan_stack(STACK, "recreate", model("caddy", "n8n"), proxy="caddy", services=["caddy", "n8n"])
    assert plan.args[-2:] == ("--", "n8n")
    assert "caddy" in plan.note
    with pytest.raises(ProxyAtRisk) as alone:
        plan_stack(STACK, "recreate", model("caddy", "n8n"), proxy="caddy", services=["caddy"])
    assert alone.value.downtime == DOWNTIME_SECONDS
    assert f"about {DOWNTIME_SECONDS} s" in alone.value.message


@pytest.mark.parametrize("action", ["stop", "restart", "recreate"])
def test_the_proxy_alone_is_asked_about_first(action):
    with pytest.raises(ProxyAtRisk) as risk:
        plan_service(STACK, action, "caddy", proxy="caddy")
    if action == "stop":
        assert risk.value.downtime is None and "up -d -- caddy" in risk.value.message
    else:
        assert "reconnects by itself" in risk.value.message
    assert plan_service(STACK, action, "caddy", proxy="caddy", insist=True).args[-1] == "caddy"
    assert plan_service(STACK, "start", "caddy", proxy="caddy").args[-1] == "caddy"


COMPOSE = """
services:
  flowise:
    image: flowise
    volumes:
      - ~/.flowise:/root/.flowise
      - ./data:/data
  other:
    image: x
    volumes:
      - type: bind
        source: ~/models
        target: /models
"""


def test_tilde_binds_are_refused_in_a_container_without_the_host_home(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    files = ["docker-compose.yml"]
    assert hostpaths.tilde_sources(tmp_path, files) == [
        "~/.flowise in docker-compose.yml",
        "~/models in docker-compose.yml",
    ]
    with pytest.raises(InvalidInput, match="STACKPILOT_HOST_HOME"):
        hostpaths.check_binds(tmp_path, files, ["up", "-d"], environ={}, container=True)
    # With the host's HOME, or outside a container, or a command creating nothing: fine.
    hostpaths.check_binds(tmp_path, files, ["up", "-d"], environ={"STACKPILOT_HOST_HOME": "/home/me"}, container=True)
    hostpaths.check_binds(tmp_path, files, ["up", "-d"], environ={}, container=False)
    hostpaths.check_binds(tmp_path, files, ["stop"], environ={}, container=True)


def test_compose_runs_with_the_host_home_and_keeps_its_own_config():
    env = hostpaths.compose_env({"HOME": "/data", "STACKPILOT_HOST_HOME": "/home/me"})
    assert env["HOME"] == "/home/me" and env["DOCKER_CONFIG"] == "/data/.docker"
    assert hostpaths.compose_env({"HOME": "/data", "STACKPILOT_HOST_HOME": "relative"})["HOME"] == "/data"


def test_preflight_shows_each_binds_host_path_and_takes_tilde_with_the_host_home(tmp_path, monkeypatch):
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: x\n    volumes: ['~/.flowise:/data']\n")
    stack = Stack(tmp_path, "p", ("compose.yaml",))
    # What Compose resolves when it runs with the host user's HOME.
    config = {"services": {"web": {"volumes": [{"type": "bind", "source": "/home/me/.flowise", "target": "/data"}]}}}
    monkeypatch.setenv("STACKPILOT_HOST_HOME", "/home/me")
    row = preflight.binds_check(stack, recipes.for_stack(tmp_path), config, in_container=True)
    assert row.status == "pass", row
    assert "/home/me/.flowise → /data (web)" in row.reason and "(/home/me)" in row.reason
    monkeypatch.delenv("STACKPILOT_HOST_HOME")
    row = preflight.binds_check(stack, recipes.for_stack(tmp_path), config, in_container=True)
    assert row.status == "fail" and "~/.flowise" in row.reason
