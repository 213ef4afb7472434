"""The web layer: blueprints (one per area), security, error pages, the WebSocket extension.

Views here are thin: parse input, call the domain, render a page or a fragment. The request's
user, stack, engine and Compose runner come from app.web.context; blueprints import nothing back
from this package. All wiring is in init_app, called by create_app.
"""

from __future__ import annotations

from flask import Flask

from app.web.sockets import sock


def init_app(app: Flask) -> None:
    """Register every area; per-stack areas are served under /s/<stack>/ and at their old paths."""
    from app.web import activity
    from app.web import api
    from app.web import apiv1
    from app.web import auth
    from app.web import backups
    from app.web import config
    from app.web import context
    from app.web import engines
    from app.web import errors
    from app.web import graph
    from app.web import home
    from app.web import https
    from app.web import live
    from app.web import logs
    from app.web import portlinks
    from app.web import security
    from app.web import services
    from app.web import setup
    from app.web import shell

    security.init_app(app)
    context.init_app(app)
    errors.init_app(app)
    sock.init_app(app)
    for area in (home, auth, engines, api, apiv1, https, activity, portlinks):
        app.register_blueprint(area.bp)
    per_stack = (setup, services, logs, config, graph, live, shell, backups)
    context.register_stack_blueprints(app, [area.bp for area in per_stack])
    context.register_stack_blueprints(app, [home.stack_bp], legacy=False)
    for area in (home, auth, engines, setup, services, logs, config, graph, api, apiv1, live, shell, backups):
        if hasattr(area, "init_app"):
            area.init_app(app)
