"""The web layer: blueprints (one per area), security, error pages, the WebSocket extension.

Views here are thin: parse input, call the domain, render a page or a fragment.
"""

from __future__ import annotations

from flask import Flask
from flask import current_app
from flask_sock import Sock

from app.engine import Engine
from app.settings import Settings
from app.store import Store

sock = Sock()


def store() -> Store:
    return current_app.extensions["stackpilot.store"]


def engine() -> Engine:
    return current_app.extensions["stackpilot.engine"]


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def init_app(app: Flask) -> None:
    from app.web import api
    from app.web import auth
    from app.web import config
    from app.web import errors
    from app.web import graph
    from app.web import live
    from app.web import logs
    from app.web import security
    from app.web import services
    from app.web import setup

    security.init_app(app)
    errors.init_app(app)
    sock.init_app(app)
    for area in (auth, setup, services, logs, config, graph, api, live):
        app.register_blueprint(area.bp)
        if hasattr(area, "init_app"):
            area.init_app(app)


def current_stack():
    """The managed stack as configured now, or None when STACKPILOT_STACK_DIR is not set."""
    from app import compose
    from app.errors import StackpilotError
    from app.stack import default_files
    from app.stack import stack_from

    directory = settings().stack_dir
    if directory is None:
        return None
    saved = dict(store().get_setting("stack") or {})
    if not saved.get("project"):
        # Compose's own choice: `name:` in the file, COMPOSE_PROJECT_NAME in .env, else the folder.
        try:
            saved["project"] = compose.default_project_name(
                directory, saved.get("files") or default_files(directory))
        except StackpilotError:
            pass  # stack_from falls back to the folder name; the model shows the compose error
    return stack_from(directory, saved)
