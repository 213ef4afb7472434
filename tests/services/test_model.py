"""The compose model comes from the real Compose CLI: include, override, profiles, caching, errors."""

from __future__ import annotations

import os
import time

import pytest

from app import compose
from app.errors import ComposeFailed
from app.errors import ComposeUnavailable
from app.errors import InvalidName
from app.errors import StackBusy
from app.stack import stack_from
from app.stack.model import load_model
from tests.services import stacks
from tests.services.conftest import shared_name

RUNNERS = compose.Runners()  # an app's runners, without the app


def test_model_reads_what_the_table_needs(web_stack):
    stack = stack_from(web_stack.dir, {"project": web_stack.project})
    model = load_model(RUNNERS.for_stack(stack))
    assert model.service_names() == sorted(model.service_names()) or set(model.service_names()) == {
        "db",
        "init",
        "web",
        "worker",
        "crashy",
        "idle",
    }
    web = model.require("web")
    assert [(d.service, d.condition) for d in web.depends_on] == [
        ("db", "service_healthy"),
        ("init", "service_completed_successfully"),
    ]
    assert web.ports[0].host_ip == "127.0.0.1" and web.ports[0].container_port == "8080"
    assert web.ports[0].linkable and web.ports[0].protocol == "tcp"
    assert web.memory == 64 * 1024 * 1024
    assert web.group == "frontend"
    assert model.require("db").has_healthcheck and not model.require("worker").has_healthcheck
    assert model.require("init").one_shot
    assert model.require("crashy").restart == "always"
    assert model.volumes == {"dbdata": f"{web_stack.project}_dbdata"}
    assert model.inactive_names() == []


def test_include_and_override_files(make_stack):
    proj = make_stack(
        {
            "docker-compose.yml": stacks.INCLUDE_MAIN,
            "extra/compose.extra.yml": stacks.INCLUDE_EXTRA,
            "docker-compose.override.private.yml": stacks.OVERRIDE,
        },
        name="inc",
    )
    plain = load_model(RUNNERS.for_stack(stack_from(proj.dir, {"project": proj.project})))
    assert set(plain.service_names()) == {"app", "sidecar"}
    assert plain.require("app").group == ""
    files = ["docker-compose.yml", "docker-compose.override.private.yml"]
    both = load_model(RUNNERS.for_stack(stack_from(proj.dir, {"project": proj.project, "files": files})))
    assert both.require("app").group == "apps"
    assert both.require("app").environment["FROM_OVERRIDE"] == "yes"
    assert both.require("sidecar").name == "sidecar"


def test_profiles_sharing_a_container_name(make_stack):
    shared = shared_name()
    proj = make_stack({"docker-compose.yml": stacks.fill(stacks.PROFILES, shared=shared)}, name="prof")
    none = load_model(RUNNERS.for_stack(stack_from(proj.dir, {"project": proj.project})))
    assert none.service_names() == ["ui"]
    assert set(none.inactive_names()) == {"ollama-cpu", "ollama-gpu", "ollama-gpu-amd"}
    assert none.profiles == ("cpu", "gpu-amd", "gpu-nvidia")
    cpu = load_model(RUNNERS.for_stack(stack_from(proj.dir, {"project": proj.project, "profiles": ["cpu"]})))
    assert set(cpu.service_names()) == {"ui", "ollama-cpu"}
    assert cpu.require("ollama-gpu").container_name == shared
    with pytest.raises(InvalidName):
        cpu.require("ollama-gpu", active=True)


def test_model_follows_file_changes(web_stack):
    stack = stack_from(web_stack.dir, {"project": web_stack.project})
    first = load_model(RUNNERS.for_stack(stack))
    assert load_model(RUNNERS.for_stack(stack)) is first  # cached
    text = (web_stack.dir / "docker-compose.yml").read_text()
    web_stack.write("docker-compose.yml", text.replace("  idle:\n", "  newcomer:\n"))
    os.utime(web_stack.dir / "docker-compose.yml", (time.time() + 2, time.time() + 2))
    second = load_model(RUNNERS.for_stack(stack))
    assert "newcomer" in second.service_names() and "idle" not in second.service_names()


def test_invalid_file_raises_with_compose_message(make_stack):
    bad = 'services:\n  web:\n    image: {image}\n    ports: ["nope:x:y:z"]\n'
    proj = make_stack({"docker-compose.yml": bad}, name="bad")
    with pytest.raises(ComposeFailed) as info:
        RUNNERS.for_stack(stack_from(proj.dir, {"project": proj.project})).config_json()
    assert info.value.detail  # Compose's own words


def test_env_file_can_be_compared(make_stack, tmp_path):
    proj = make_stack(
        {
            "docker-compose.yml": "services:\n  a:\n    image: {image}\n    environment:\n      X: ${X:-unset}\n",
            ".env": "X=old\n",
        },
        name="env",
    )
    stack = stack_from(proj.dir, {"project": proj.project})
    draft = tmp_path / "draft.env"
    draft.write_text("X=new\n")
    assert RUNNERS.for_stack(stack).config_json()["services"]["a"]["environment"]["X"] == "old"
    assert RUNNERS.for_stack(stack).config_json(env_file=draft)["services"]["a"]["environment"]["X"] == "new"


def test_missing_compose_names_what_was_tried(tmp_path):
    runners = compose.Runners((str(tmp_path / "no-such-compose"),))
    with pytest.raises(ComposeUnavailable) as info:
        runners.compose_version()
    assert "no-such-compose" in info.value.message
    runners.configure()
    assert runners.compose_version().startswith("2.")


def test_second_action_on_a_stack_is_refused(web_stack):
    stack = stack_from(web_stack.dir, {"project": web_stack.project})
    runner = RUNNERS.for_stack(stack)
    with runner.lock("a long action", user="alice"):
        with pytest.raises(StackBusy) as info:
            runner.run(["ps"])
        assert "a long action" in info.value.message and "alice" in info.value.message
    lines = []
    assert runner.run(["config", "--services"], on_line=lines.append) == 0
    assert "web" in lines


def test_run_streams_lines_and_times_out(web_stack):
    stack = stack_from(web_stack.dir, {"project": web_stack.project})
    runner = RUNNERS.for_stack(stack)
    run = runner.start(["run", "--rm", "--no-deps", "idle", "sh", "-c", "echo one; sleep 30"], title="slow", timeout=3)
    assert run.wait(30)
    lines, count = run.lines_since(0)
    assert run.timed_out and run.exit_code == -1
    assert any("one" in line for line in lines) and count == len(lines)
    assert runner.busy() is None
    web_stack.compose("down", "-t", "0", check=False)
