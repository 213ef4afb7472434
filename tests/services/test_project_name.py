"""The default project name is the one Compose itself would choose."""

import pytest

from app.web.context import current_stack


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"docker-compose.yml": "name: chosen-by-file\nservices:\n  a:\n    image: {image}\n"}, "chosen-by-file"),
        (
            {
                "docker-compose.yml": "services:\n  a:\n    image: {image}\n",
                ".env": "COMPOSE_PROJECT_NAME=chosen-by-env\n",
            },
            "chosen-by-env",
        ),
    ],
)
def test_default_project_name_follows_compose(make_stack, app_factory, files, expected):
    stack = make_stack(files)
    app = app_factory(stack_dir=stack.dir)
    with app.app_context():
        assert current_stack().project == expected


def test_saved_project_name_wins(make_stack, app_factory):
    stack = make_stack({"docker-compose.yml": "name: from-file\nservices:\n  a:\n    image: {image}\n"})
    app = app_factory(stack_dir=stack.dir)
    app.extensions["stackpilot.store"].set_setting("stack", {"project": "saved-name"})
    with app.app_context():
        assert current_stack().project == "saved-name"


def test_folder_name_when_compose_cannot_read_the_file(make_stack, app_factory):
    stack = make_stack({"docker-compose.yml": "services: [not, a, mapping\n"})
    app = app_factory(stack_dir=stack.dir)
    with app.app_context():
        assert current_stack().project == stack.dir.name.lower()


def test_broken_files_keep_the_last_good_name_and_its_containers(make_stack, app_factory):
    """When the files or .env break, the name Compose gave last is kept (stored), so the running
    containers and the table stay, instead of falling back to the folder's name."""
    from app.engine import containers

    stack = make_stack(
        {
            "docker-compose.yml": "name: {project}\nservices:\n  web:\n    image: {image}\n"
            "    command: ['sleep', '3600']\n    stop_grace_period: 1s\n"
        }
    )
    text = (stack.dir / "docker-compose.yml").read_text().replace("{project}", stack.project)
    stack.write("docker-compose.yml", text)
    stack.write(".env", "A=1\n")
    stack.compose("up", "-d")
    app = app_factory(stack_dir=stack.dir)
    with app.app_context():
        assert current_stack().project == stack.project
    stack.write("docker-compose.yml", text + "  broken: [\n")  # Compose can no longer say
    again = app_factory(stack_dir=stack.dir)  # a restart: only the store remembers
    with again.app_context():
        assert current_stack().project == stack.project
        # the containers are still found by label under that name (the engine's view, not the files')
        found = containers.project_containers(again.extensions["stackpilot.engine"], current_stack().project)
        assert [c.service for c in found] == ["web"]


def test_own_container_project_and_files_are_the_default(make_stack, app_factory, docker_engine):
    """Running inside a compose project started from this folder (its labels say so), Stackpilot
    defaults to that project and its config files, before any wizard run."""
    from tests.conftest import sign_in

    stack = make_stack(
        {
            "compose.yaml": "services:\n  stackpilot:\n    image: {image}\n"
            "    command: ['sleep', '3600']\n    stop_grace_period: 1s\n",
            "compose.prod.yml": "services:\n  stackpilot:\n    labels: {x: y}\n",
        }
    )
    stack.compose("-f", str(stack.dir / "compose.yaml"), "-f", str(stack.dir / "compose.prod.yml"), "up", "-d")
    ours = docker_engine.containers.list(filters={"label": f"com.docker.compose.project={stack.project}"})[0]
    app = app_factory(stack_dir=stack.dir, STACKPILOT_SELF_CONTAINER_ID=ours.id)
    with app.app_context():
        assert current_stack().project == stack.project
    admin = sign_in(app, app.test_client(), "admin")
    admin.post("/setup/preflight")
    page = admin.get("/setup/stack").get_data(as_text=True)
    assert f'value="{stack.project}"' in page
    assert 'name="file" value="compose.yaml" checked' in page
    assert 'name="file" value="compose.prod.yml" checked' in page


def test_name_read_from_the_files_when_compose_cannot_load_them(make_stack, app_factory):
    """appwrite's `depends_on: ${_APP_DB_HOST:-postgresql}` fails `config --no-interpolate`; the
    name still follows Compose's rule (COMPOSE_PROJECT_NAME in .env, else `name:`), not the folder."""
    text = (
        "name: from-file\nservices:\n  a:\n    image: {image}\n    depends_on:\n"
        "      ${DB_HOST:-db}:\n        condition: service_started\n  db:\n    image: {image}\n"
    )
    stack = make_stack({"docker-compose.yml": text})
    app = app_factory(stack_dir=stack.dir)
    with app.app_context():
        assert current_stack().project == "from-file"
    stack.write(".env", "COMPOSE_PROJECT_NAME=from-env\n")
    with app.app_context():
        assert current_stack().project == "from-env"
