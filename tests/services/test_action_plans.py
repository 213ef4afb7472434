"""Action planning (app/stack/actions.py) without an engine: every name follows `--`, and
Stackpilot's own service is never stopped, restarted, recreated or taken down from inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InvalidInput
from app.errors import OwnContainer
from app.stack import Stack
from app.stack.actions import plan_service
from app.stack.actions import plan_stack
from app.stack.actions import plan_up
from app.stack.model import model_from_json

STACK = Stack(directory=Path("/srv/stack"), project="demo")
MODEL = model_from_json(
    {
        "name": "demo",
        "services": {"web": {"image": "x"}, "--remove-orphans": {"image": "x"}, "stackpilot": {"image": "x"}},
        "volumes": {"data": {}},
    }
)


@pytest.mark.parametrize(
    ("action", "exists", "args"),
    [
        ("start", True, ("start", "--", "--remove-orphans")),
        ("start", False, ("up", "-d", "--", "--remove-orphans")),
        ("stop", True, ("stop", "--", "--remove-orphans")),
        ("restart", True, ("restart", "--", "--remove-orphans")),
        ("recreate", True, ("up", "-d", "--force-recreate", "--no-deps", "--", "--remove-orphans")),
        ("pull", True, ("pull", "--", "--remove-orphans")),
    ],
)
def test_a_name_never_becomes_a_flag(action, exists, args):
    assert plan_service(STACK, action, "--remove-orphans", exists=exists).args == args


@pytest.mark.parametrize("action", ["stop", "restart", "recreate"])
def test_our_own_service_is_refused_with_the_host_command(action):
    with pytest.raises(OwnContainer) as caught:
        plan_service(STACK, action, "stackpilot", own="stackpilot")
    assert "docker compose -p demo" in caught.value.message and "/srv/stack" in caught.value.message
    assert plan_service(STACK, "start", "stackpilot", own="stackpilot").args == ("start", "--", "stackpilot")


def test_stack_actions_name_every_other_service_when_we_run_inside():
    assert plan_stack(STACK, "up", MODEL, own="stackpilot").args == (
        "up",
        "-d",
        "--no-deps",
        "--",
        "web",
        "--remove-orphans",
    )
    down = plan_stack(STACK, "down", MODEL, own="stackpilot", delete_volumes=True)
    assert down.args == ("rm", "-f", "-s", "-v", "--", "web", "--remove-orphans")
    assert "named volumes kept" in down.note and "demo_data" in down.detail
    assert plan_stack(STACK, "restart", MODEL, own="stackpilot").args == ("restart", "--", "web", "--remove-orphans")
    recreate = plan_stack(STACK, "recreate", MODEL, own="stackpilot", services=["stackpilot", "web"])
    assert recreate.args == ("up", "-d", "--force-recreate", "--no-deps", "--", "web") and "skipped" in recreate.note
    with pytest.raises(OwnContainer):
        plan_stack(STACK, "recreate", MODEL, own="stackpilot", services=["stackpilot"])


def test_stack_actions_without_us():
    assert plan_stack(STACK, "up", MODEL).args == ("up", "-d")
    assert plan_stack(STACK, "down", MODEL).args == ("down",)
    assert plan_stack(STACK, "down", MODEL, delete_volumes=True).args == ("down", "-v")
    assert plan_stack(STACK, "restart", MODEL).args == ("restart",)
    with pytest.raises(InvalidInput):
        plan_stack(STACK, "recreate", MODEL, services=[])
    with pytest.raises(InvalidInput):
        plan_stack(STACK, "explode", MODEL)


def test_launch_start_leaves_us_alone():
    base = ("up", "-d", "--remove-orphans")
    assert plan_up(["web", "stackpilot"], None, base).args == base
    planned = plan_up(["web", "stackpilot"], "stackpilot", base)
    assert planned.args == ("up", "-d", "--no-deps", "--", "web") and "left as it is" in planned.note
    assert plan_up(["stackpilot"], "stackpilot", base).args == ()
