"""The one place where errors become pages: typed domain errors, HTTP errors, and the unexpected.

A full request gets a full page; an htmx request gets an alert fragment retargeted into the
page's alert area (so the page a person is on never turns into an error page); /api gets JSON.
"""

from __future__ import annotations

import errno
import logging

from flask import Flask
from flask import jsonify
from flask import render_template
from flask import request
from werkzeug.exceptions import HTTPException

from app.errors import StackpilotError
from app.web.security import has_role

log = logging.getLogger(__name__)
BAD_NAME = (
    "That is not a file name: names cannot hold a NUL character, and each folder or file name is at most 255 bytes."
)


def wants_fragment() -> bool:
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-Boosted")


def render_error(status: int, title: str, message: str, detail: str = ""):
    # Details quote engine/Compose output, which can echo .env values: admins only.
    if detail and not has_role("admin"):
        detail = ""
    if request.path.startswith("/api/") or request.headers.get("Upgrade", "").lower() == "websocket":
        return jsonify(error=message, title=title), status
    if wants_fragment():
        html = render_template("_alert.html", kind="error", title=title, message=message, detail=detail)
        return html, status, {"HX-Retarget": "#alerts", "HX-Reswap": "afterbegin"}
    return render_template("errors/page.html", status=status, title=title, message=message, detail=detail), status


def _domain_error(e: StackpilotError):
    response = render_error(e.status, e.title, e.message, e.detail)
    if retry_after := getattr(e, "retry_after", None):  # throttles and full slots say when
        body, status, *rest = response if isinstance(response, tuple) else (response, e.status)
        headers = dict(rest[0]) if rest else {}
        headers["Retry-After"] = str(retry_after)
        return body, status, headers
    return response


def _http_error(e: HTTPException):
    titles = {
        400: "Bad request",
        401: "Sign-in needed",
        403: "Not allowed",
        404: "Page not found",
        405: "Method not allowed",
        413: "Too large",
        429: "Too many requests",
    }
    default = e.description if e.description and e.code not in (404, 405) else ""
    messages = {404: "There is nothing at this address.", 405: "This address does not accept that kind of request."}
    return render_error(e.code or 500, titles.get(e.code, e.name), default or messages.get(e.code, e.name))


def _unexpected(e: Exception):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return render_error(
        500, "Unexpected error", "Stackpilot hit an unexpected error. Nothing was changed; the details are in its log."
    )


def _os_error(e: OSError):
    """Two OS errors that are the client's doing, not ours. A WebSocket client that leaves during
    the handshake makes the 101 fail to send (reset, broken pipe, closed descriptor): it is gone,
    there is no one to answer and nothing to log. A typed file name longer than the file system
    allows (ENAMETOOLONG) is bad input wherever a view meets it: 422, never a 500."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        log.info("WebSocket client left during the handshake on %s: %s", request.path, e.strerror or e)
        return "", 204
    if e.errno == errno.ENAMETOOLONG:
        return render_error(422, "Check the form", BAD_NAME)
    return _unexpected(e)


def _value_error(e: ValueError):
    """A NUL byte in a typed name reaches the file system as ValueError("embedded null byte")."""
    if "null byte" in str(e) or "null character" in str(e):
        return render_error(422, "Check the form", BAD_NAME)
    return _unexpected(e)


def init_app(app: Flask) -> None:
    app.register_error_handler(StackpilotError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OSError, _os_error)
    app.register_error_handler(ValueError, _value_error)
    app.register_error_handler(Exception, _unexpected)
