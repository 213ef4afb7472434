"""The stack registry as a domain: discovery from container rows, the root folder, new folders,
per-user limits, and the old paths' URLs (no Docker needed)."""

from __future__ import annotations

import subprocess

import pytest
from flask import url_for

from app.errors import InvalidInput
from app.stack.registry import StackRegistry
from app.stack.registry import projects_from_containers
from app.store import Store


def _row(
    project,
    state="running",
    status="Up 3 minutes",
    name="c",
    workdir="/srv/x",
    files="/srv/x/compose.yaml",
    oneoff="False",
):
    return {
        "Names": [f"/{name}"],
        "State": state,
        "Status": status,
        "Labels": {
            "com.docker.compose.project": project,
            "com.docker.compose.project.working_dir": workdir,
            "com.docker.compose.project.config_files": files,
            "com.docker.compose.oneoff": oneoff,
        },
    }


def test_projects_from_one_listing_count_states_and_name_problems():
    seen = projects_from_containers(
        [
            _row("media", name="jellyfin"),
            _row("media", "exited", "Exited (1) 2 minutes ago", name="sonarr"),
            _row("media", "running", "Up 1 hour (unhealthy)", name="radarr"),
            _row("media", "exited", "Exited (0) 1 minute ago", name="init"),
            _row("db", "restarting", "Restarting (1) 2 seconds ago", name="pg", workdir="/srv/db", files=""),
            _row("db", name="run-once", oneoff="True"),
            {"Names": ["/plain"], "State": "running", "Status": "Up", "Labels": {}},
        ]
    )
    assert set(seen) == {"media", "db"}
    media = seen["media"]
    assert media.states == {"running": 2, "exited": 2} and media.containers == 4
    assert media.working_dir == "/srv/x" and media.config_files == ("/srv/x/compose.yaml",)
    assert media.problems == ["sonarr exited: Exited (1) 2 minutes ago", "radarr is unhealthy"]
    assert seen["db"].problems == ["pg keeps restarting"] and seen["db"].containers == 1


def test_root_folder_engine_projects_and_limits(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    root = tmp_path / "stacks"
    for name in ("media", "proxy", "empty"):
        (root / name).mkdir(parents=True)
    (root / "media" / "compose.yaml").write_text("services:\n  a:\n    image: x\n")
    (root / "proxy" / "docker-compose.yml").write_text("name: edge\nservices:\n  a:\n    image: x\n")
    reg = StackRegistry(store, root=root)
    assert [e.slug for e in reg.sync_root()] == ["media", "edge"]
    assert reg.sync_root() == []  # a second scan writes nothing
    assert reg.get("edge").project == "edge" and reg.get("edge").reachable
    assert reg.default() is None  # two stacks with folders: no implicit default

    seen = projects_from_containers(
        [_row("edge", workdir=str(root / "proxy")), _row("ai", workdir="/elsewhere", files="/elsewhere/compose.yml")]
    )
    new = reg.sync_engine("local", seen)
    assert [(e.slug, e.source, e.files) for e in new] == [("ai", "engine", ("compose.yml",))]
    assert not reg.get("ai").reachable and "not reachable" in reg.get("ai").what_to_add()
    assert reg.sync_engine("local", seen) == []
    # the same project on another engine is another stack
    other = reg.sync_engine("nas", projects_from_containers([_row("ai", workdir="/x")]))
    assert [e.slug for e in other] == ["ai-nas"]

    reg.store.add_user("kid", "x", "viewer")
    kid = store.user_by_name("kid")
    assert reg.allowed(kid.id) is None
    reg.set_allowed(kid.id, ["media", "no-such-stack"])
    assert reg.allowed(kid.id) == {"media"}
    reg.forget("media")
    # forgetting a stack never lifts a limit: no rows would read as "every stack"
    assert reg.allowed(kid.id) == {"media"} and reg.get("media") is None
    assert "media" in [e.slug for e in reg.sync_root()]  # found again in the root: the kid's again
    assert reg.allowed(kid.id) == {"media"}


def test_default_stack_is_the_env_folder_first(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    folder = tmp_path / "My Stack"
    folder.mkdir()
    (folder / "compose.yaml").write_text("services: {}\n")
    reg = StackRegistry(store, default_dir=folder)
    entry = reg.ensure_default()
    assert entry.slug == "mystack" and entry.source == "env" and reg.default() == entry
    assert reg.ensure_default() == entry and len(reg.all()) == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("ok-name", "", "Paste a compose file"),
        ("ok-name", "services: [a,\n", "not valid YAML (line"),
        ("ok-name", "just: text\n", "top-level services:"),
        ("Bad Name", "services: {}\n", "lowercase letters"),
        ("taken", "services: {}\n", "exists already"),
    ],
)
def test_pasted_compose_file_refusals_write_nothing(tmp_path, name, text, message):
    root = tmp_path / "stacks"
    (root / "taken").mkdir(parents=True)
    reg = StackRegistry(Store(tmp_path / "db.sqlite3"), root=root)
    with pytest.raises(InvalidInput) as info:
        reg.create_from_compose(name, text)
    assert message in info.value.message
    assert sorted(p.name for p in root.iterdir()) == ["taken"] and reg.all() == []


def test_clone_refuses_option_urls_and_cleans_up_a_failed_clone(tmp_path):
    root = tmp_path / "stacks"
    root.mkdir()
    reg = StackRegistry(Store(tmp_path / "db.sqlite3"), root=root)
    with pytest.raises(InvalidInput):
        reg.create_from_git("x", "--upload-pack=touch /tmp/pwned")
    empty = tmp_path / "empty-repo"
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(empty),
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "empty",
        ],
        check=True,
    )
    with pytest.raises(InvalidInput) as info:
        reg.create_from_git("x", str(empty))
    assert "no compose file" in info.value.message
    assert list(root.iterdir()) == [] and reg.all() == []


def test_old_paths_build_old_urls_and_stack_paths_build_stack_urls(app):
    with app.test_request_context("/services"):
        app.preprocess_request()
        assert url_for("services.index") == "/services" and url_for("logs.stream").endswith("/logs/-/ws")
        assert url_for("services.index", stack="media") == "/s/media/services"
    with app.test_request_context("/login"):
        assert url_for("config.index") == "/config/"


@pytest.mark.docker
def test_a_broken_file_costs_one_compose_process_per_ttl_not_per_poll(tmp_path):
    """The failed `config` is remembered (FAILURE_TTL) until a compose file changes."""
    from app import compose
    from app.errors import ComposeFailed
    from app.stack import stack_from

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "compose.yaml").write_text("services:\n  a: [not, a, mapping\n")
    runner = compose.Runners().for_stack(stack_from(folder))
    with pytest.raises(ComposeFailed) as first:
        runner.config_json()
    with pytest.raises(ComposeFailed) as again:
        runner.config_json()
    assert again.value is first.value  # answered from memory: no second Compose process
    (folder / "compose.yaml").write_text("services:\n  a:\n    image: x\n")
    assert "a" in runner.config_json()["services"]  # a changed file is read at once


def test_home_with_a_dead_engine_says_so_and_still_offers_stacks(app_factory, dead_docker_host, tmp_path):
    from tests.conftest import sign_in

    root = tmp_path / "stacks"
    (root / "media").mkdir(parents=True)
    (root / "media" / "compose.yaml").write_text("services:\n  a:\n    image: x\n")
    app = app_factory(docker_host=dead_docker_host, STACKPILOT_STACKS_DIR=str(root))
    html = sign_in(app, app.test_client()).get("/").get_data(as_text=True)
    assert "is unreachable: no Docker socket at that path" in html and 'id="stack-media"' in html


@pytest.mark.parametrize("with_default", [False, True])
def test_sign_in_opens_the_default_stack_else_the_home_page(app_factory, dead_docker_host, tmp_path, with_default):
    import re

    from tests.support.live import TEST_PASSWORD
    from tests.support.live import ensure_user

    folder = tmp_path / "mystack"
    folder.mkdir()
    (folder / "compose.yaml").write_text("services: {}\n")
    app = app_factory(docker_host=dead_docker_host, stack_dir=folder if with_default else None)
    ensure_user(app.config["SETTINGS"].data_dir, "admin", "admin")
    client = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True))[1]
    r = client.post("/login", data={"username": "admin", "password": TEST_PASSWORD, "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == ("/services" if with_default else "/")


def test_pages_discovering_one_project_at_once_register_it_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    reg = StackRegistry(Store(tmp_path / "db.sqlite3"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        slugs = set(
            pool.map(lambda _: reg.add(project="media", directory="/srv/media", source="engine").slug, range(16))
        )
    assert slugs == {"media"} and [e.slug for e in reg.all()] == ["media"]


def test_an_uploaded_compose_file_becomes_a_stack(app_factory, dead_docker_host, tmp_path):
    import io

    from tests.conftest import sign_in

    root = tmp_path / "stacks"
    root.mkdir()
    app = app_factory(docker_host=dead_docker_host, STACKPILOT_STACKS_DIR=str(root))
    admin = sign_in(app, app.test_client())
    text = b"services:\n  web:\n    image: nginx\n"
    r = admin.post(
        "/stacks/new",
        data={"name": "web", "file": (io.BytesIO(text), "compose.yaml")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 303 and r.headers["Location"] == "/s/web/services"
    assert (root / "web" / "compose.yaml").read_bytes() == text
    bad = admin.post(
        "/stacks/new",
        data={"name": "bin", "file": (io.BytesIO(b"\xff\xfe"), "x.yaml")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and not (root / "bin").exists()
