"""The default project name is the one Compose itself would choose."""

import pytest

from app.web import current_stack


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"docker-compose.yml": "name: chosen-by-file\nservices:\n  a:\n    image: {image}\n"}, "chosen-by-file"),
        ({"docker-compose.yml": "services:\n  a:\n    image: {image}\n",
          ".env": "COMPOSE_PROJECT_NAME=chosen-by-env\n"}, "chosen-by-env"),
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
