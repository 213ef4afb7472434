"""Preflight checks against the real engine: mounts as the engine reports them, taken ports,
GPU devices, and the compose-file check with and without the recipe's fetched folder."""

from __future__ import annotations

import secrets

import pytest

from app import compose
from app.engine import Engine
from app.stack import Stack
from app.stack.model import exclusive_groups
from app.stack.model import model_from_files
from app.stack.model import profile_options
from app.wizard import preflight
from app.wizard import recipe as recipes
from tests.conftest import PREFIX
from tests.setup import fixture_stack as fx
from tests.support.engine import DEFAULT_SOCKET
from tests.support.live import free_port

RUNNERS = compose.Runners()  # an app's runners, without the app

pytestmark = pytest.mark.docker


@pytest.fixture
def engine(docker_engine):
    eng = Engine(f"unix://{DEFAULT_SOCKET}")
    yield eng
    eng.close()


@pytest.fixture
def container_with_mount(docker_engine, busybox_image, tmp_path):
    """A real container whose /stack is the host folder tmp_path/host-stack (a different path)."""
    host = tmp_path / "host-stack"
    host.mkdir()
    made = []

    def run(target: str):
        c = docker_engine.containers.run(
            busybox_image,
            ["sleep", "60"],
            detach=True,
            name=f"{PREFIX}-mount-{secrets.token_hex(3)}",
            volumes={str(host): {"bind": target, "mode": "rw"}},
            network_mode="none",  # needs no network (nor the engine's default bridge)
        )
        made.append(c)
        return c

    yield host, run
    for c in made:
        c.remove(force=True)


def test_mount_at_another_path_fails_with_the_fix(engine, container_with_mount):
    host, run = container_with_mount
    c = run("/stack")
    row = preflight.mount_check(engine, __import__("pathlib").Path("/stack/sub"), container=c.id)
    assert row.status == "fail"
    assert f"{host}/sub on the host but /stack/sub in here" in row.reason
    assert f"- {host}/sub:{host}/sub" in row.fix


def test_mount_at_the_same_path_passes(engine, container_with_mount):
    host, run = container_with_mount
    c = run(str(host))
    assert preflight.mount_check(engine, host, container=c.id).status == "pass"


def test_not_in_a_container_says_so(engine, tmp_path):
    row = (
        preflight.mount_check(engine, tmp_path, container=None)
        if preflight.own_container_id() is None
        else preflight.compare_mounts([{"Destination": str(tmp_path), "Source": str(tmp_path)}], tmp_path)
    )
    assert row.status == "pass"


def test_port_taken_by_another_container_fails(engine, docker_engine, busybox_image, make_stack):
    port = free_port()
    # its own network: the engine's default bridge is not needed (nor always there)
    net = docker_engine.networks.create(f"{PREFIX}-portnet-{secrets.token_hex(3)}")
    other = None
    try:
        other = docker_engine.containers.run(
            busybox_image,
            ["httpd", "-f", "-p", "80"],
            detach=True,
            name=f"{PREFIX}-port-{secrets.token_hex(3)}",
            ports={"80/tcp": port},
            network=net.name,
        )
        proj = make_stack(
            {
                "docker-compose.yml": f"services:\n  web:\n    image: {{image}}\n    pull_policy: never\n"
                f"    ports: ['{port}:80']\n"
            }
        )
        stack = Stack(proj.dir, proj.project, ("docker-compose.yml",))
        row = preflight.ports_check(engine, stack, RUNNERS.for_stack(stack).config_json())
        assert row.status == "fail" and f"{port} (web) is used by the container {other.name}" in row.reason
        other.remove(force=True)
        assert preflight.ports_check(engine, stack, RUNNERS.for_stack(stack).config_json()).status == "pass"
    finally:
        if other is not None:
            try:
                other.remove(force=True)
            except Exception:
                pass
        net.remove()


def test_gpu_rows_follow_runtimes_and_devices(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    rows, nvidia, amd = preflight.gpu_checks({"Runtimes": {"runc": {}}}, dev)
    assert not nvidia and not amd and all(r.status == "info" for r in rows)
    (dev / "kfd").write_text("")
    (dev / "dri").mkdir()
    rows, nvidia, amd = preflight.gpu_checks({"Runtimes": {"runc": {}, "nvidia": {}}}, dev)
    assert nvidia and amd and all(r.status == "pass" for r in rows)
    report = preflight.Report(rows, nvidia=False, amd=True)
    offered = report.possible_profiles(recipes.by_name("local-ai-packaged"), ["cpu", "gpu-nvidia", "gpu-amd"])
    assert offered == {"cpu": "", "gpu-nvidia": "no NVIDIA runtime in the Docker engine", "gpu-amd": ""}


def test_ram_warns_below_the_recipe_minimum():
    assert preflight.ram_check({"MemTotal": 4 * 1024**3}, recipes.by_name("local-ai-packaged")).status == "warn"
    assert preflight.ram_check({"MemTotal": 16 * 1024**3}, recipes.by_name("local-ai-packaged")).status == "pass"


def test_compose_files_wait_for_the_recipe_then_fail_when_really_broken(make_stack, engine):
    proj = make_stack(fx.files("x", free_port()))
    recipe = recipes.for_stack(proj.dir)
    assert recipe.name == "local-ai-packaged"
    stack = Stack(proj.dir, proj.project, ("docker-compose.yml",))
    assert preflight.files_check(RUNNERS, stack, recipe)[0].status == "warn"
    proj.write("supabase/docker/docker-compose.yml", "services: [not, a, mapping\n")
    row, _config = preflight.files_check(RUNNERS, stack, recipe)
    assert row.status == "fail" and row.detail
    options = profile_options(model_from_files(proj.dir, ("docker-compose.yml",)))
    assert [o.name for o in options] == ["cpu", "gpu-amd", "gpu-nvidia"]  # read from the YAML, Compose's order
    assert exclusive_groups(options) == [("cpu", "gpu-amd", "gpu-nvidia")]  # one ollama container name


def test_dead_engine_is_a_problem_row_and_blocks_continue(app_factory, make_stack, dead_docker_host):
    from tests.conftest import sign_in

    proj = make_stack({"compose.yaml": "services:\n  a:\n    image: {image}\n"})
    app = app_factory(stack_dir=proj.dir, docker_host=dead_docker_host)
    client = sign_in(app, app.test_client(), "admin")
    body = client.get("/setup/preflight/checks").get_data(as_text=True)
    engine_row = body[body.index('id="check-engine"') :]
    engine_row = engine_row[: engine_row.index("</li>")]
    assert "Problem" in engine_row and "Fix:" in engine_row and "Docker socket" in engine_row
    assert 'class="primary" disabled' in body


def test_no_stack_folder_is_a_problem_row(app, admin_client):
    body = admin_client.get("/setup/preflight/checks").get_data(as_text=True)
    assert "STACKPILOT_STACK_DIR" in body and 'class="primary" disabled' in body
    assert admin_client.get("/setup/stack").headers["Location"].endswith("/setup/preflight")


def test_port_held_by_a_host_process_fails(make_stack, engine):
    """A port this test listens on itself (no container) is named as taken by a host process."""
    import socket

    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        proj = make_stack({"compose.yaml": f"services:\n  web:\n    image: {{image}}\n    ports: ['{port}:80']\n"})
        stack = Stack(proj.dir, proj.project, ("compose.yaml",))
        row = preflight.ports_check(engine, stack, RUNNERS.for_stack(stack).config_json())
        assert row.status == "fail" and f"{port} (web) is used by a process on this machine" in row.reason
    finally:
        listener.close()
    assert preflight.ports_check(engine, stack, RUNNERS.for_stack(stack).config_json()).status == "pass"


def test_ports_of_an_override_chosen_later_are_checked(make_stack, engine):
    """The override the person ticks in the Stack step is part of what the checks read."""
    import socket

    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        proj = make_stack(
            {
                "compose.yaml": "services:\n  web:\n    image: {image}\n",
                "compose.prod.yml": f"services:\n  web:\n    ports: ['{port}:80']\n",
            }
        )
        recipe = recipes.for_stack(proj.dir)
        base = Stack(proj.dir, proj.project, ("compose.yaml",))
        with_prod = Stack(proj.dir, proj.project, ("compose.yaml", "compose.prod.yml"))
        rows = {c.id: c for c in preflight.run(RUNNERS, engine, base, recipe, container="").checks}
        assert rows["ports"].status == "pass"
        rows = {c.id: c for c in preflight.run(RUNNERS, engine, with_prod, recipe, container="").checks}
        assert rows["ports"].status == "fail" and str(port) in rows["ports"].reason
    finally:
        listener.close()


def test_no_env_yet_is_checked_with_the_draft(make_stack, engine):
    """`${VAR:?}` and `env_file: .env` fail while there is no .env; the check reads the draft the
    wizard will write instead of showing Compose's error, and writes nothing."""
    proj = make_stack(
        {
            "compose.yaml": "services:\n  web:\n    image: {image}\n    env_file: .env\n"
            "    environment:\n      KEY: ${KEY:?set KEY}\n"
        }
    )
    recipe = recipes.for_stack(proj.dir)
    stack = Stack(proj.dir, proj.project, ("compose.yaml",))
    row, config = preflight.files_check(RUNNERS, stack, recipe)
    assert row.status == "warn" and "KEY, which the Configuration step asks for" in row.reason
    row, config = preflight.files_check(RUNNERS, stack, recipe, b"KEY=value\n")
    assert row.status == "pass" and "with the .env the wizard will write" in row.reason
    assert config["services"]["web"]["environment"]["KEY"] == "value"
    assert not (proj.dir / ".env").exists() and sorted(p.name for p in proj.dir.iterdir()) == ["compose.yaml"]


def test_no_default_file_sends_to_the_stack_step(make_stack):
    """A folder with only docker-compose.postgres.yml (paperless) is not a dead end at the checks."""
    proj = make_stack({"docker-compose.postgres.yml": "services:\n  web:\n    image: {image}\n"})
    row, config = preflight.files_check(RUNNERS, Stack(proj.dir, proj.project, ()), recipes.for_stack(proj.dir))
    assert row.status == "warn" and "docker-compose.postgres.yml" in row.reason and "Stack step" in row.fix


def test_bind_sources_tilde_and_limits_are_named_with_a_fix(make_stack, engine):
    proj = make_stack(
        {
            "compose.yaml": "services:\n  web:\n    image: {image}\n"
            "    volumes: ['./conf/app.yml:/app.yml', './here:/here']\n"
            "    deploy:\n      resources:\n        limits:\n          cpus: '512'\n"
        }
    )
    (proj.dir / "here").mkdir()
    recipe = recipes.for_stack(proj.dir)
    stack = Stack(proj.dir, proj.project, ("compose.yaml",))
    rows = {c.id: c for c in preflight.run(RUNNERS, engine, stack, recipe, container="").checks}
    binds = rows["binds"]
    assert (
        binds.status == "warn"
        and f"{proj.dir}/conf/app.yml (web)" in binds.reason
        and "here" not in binds.reason.replace(str(proj.dir), "")
    )
    assert "empty folders" in binds.reason and binds.fix
    limits = rows["limits"]
    assert limits.status == "fail" and "web asks for 512 CPUs" in limits.reason and "Lower" in limits.fix
    proj.write(
        "compose.yaml",
        "services:\n  web:\n    image: {image}\n    volumes: ['~/.flowise:/data']\n".replace("{image}", "busybox"),
    )
    row = preflight.binds_check(stack, recipe, RUNNERS.for_stack(stack).config_json(), in_container=True)
    assert row.status == "fail" and "~/.flowise in compose.yaml" in row.reason and "HOME" in row.reason
    assert "full" in row.fix
