"""The WebSocket extension (flask-sock), bound to the app in app.web.init_app; blueprints register
their socket routes on it with `@sock.route(path, bp=bp)`."""

from __future__ import annotations

from flask_sock import Sock

sock = Sock()
