"""Stackpilot: run a self-hosted Docker Compose stack from the browser."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

__version__ = "0.1.0"

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: defaults, then the environment (Settings), then the test config."""
    from app import compose
    from app import settings as settings_module
    from app.engine import Engine
    from app.engine.registry import EngineRegistry
    from app.engine.stats import StatsSamplers
    from app.stack.registry import StackRegistry
    from app.store import Store

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    config = dict(config or {})
    settings = config.pop("SETTINGS", None) or settings_module.from_env()
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        SETTINGS=settings,
        VERSION=__version__,
        SESSION_COOKIE_NAME="stackpilot_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        # Detect dead peers of idle WebSockets within seconds.
        SOCK_SERVER_OPTIONS={"ping_interval": 5},
    )
    app.config.update(config)

    store = app.extensions["stackpilot.store"] = Store(settings.database_path)
    local_engine = Engine(settings.docker_host)
    app.extensions["stackpilot.engine"] = local_engine
    engines = app.extensions["stackpilot.engines"] = EngineRegistry(local_engine)
    # One stats sampler per engine, made on first use and running only while someone watches.
    samplers = app.extensions["stackpilot.samplers"] = StatsSamplers()
    app.extensions["stackpilot.stats"] = samplers.get(local_engine)
    app.extensions.setdefault("stackpilot.shutdown", []).append(samplers.stop)
    # One Compose runner per stack, all owned here: locks, runs and live processes per app.
    runners = app.extensions["stackpilot.runners"] = compose.Runners(settings.compose_command, engines)
    app.extensions.setdefault("stackpilot.shutdown", []).append(runners.shutdown)
    stacks = app.extensions["stackpilot.stacks"] = StackRegistry(store, settings.stacks_dir, settings.stack_dir)
    stacks.ensure_default()  # STACKPILOT_STACK_DIR's stack: registered and opened first

    from app import web

    web.init_app(app)
    return app
