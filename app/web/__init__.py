"""The web layer: blueprints (one per area), security, error pages, the WebSocket extension.

Views here are thin: parse input, call the domain, render a page or a fragment.
"""

from __future__ import annotations

from flask import Flask, current_app
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
    from app.web import api, auth, config, errors, graph, logs, security, services, setup

    security.init_app(app)
    errors.init_app(app)
    sock.init_app(app)
    for area in (auth, setup, services, logs, config, graph, api):
        app.register_blueprint(area.bp)
        if hasattr(area, "init_app"):
            area.init_app(app)


def current_stack():
    """The managed stack as configured now, or None when STACKPILOT_STACK_DIR is not set."""
    from app.stack import stack_from

    directory = settings().stack_dir
    if directory is None:
        return None
    return stack_from(directory, store().get_setting("stack"))
