"""The JSON API for programs (issue 16): /api/v1, bearer tokens, problem+json errors, rate limits.

Views are thin and call the same domain code as the pages (app.stack.actions for what Compose runs,
app.web.services.snapshot for the rows, app.engine.* for containers and logs). Authentication:
`Authorization: Bearer <token>` (app/tokens.py), checked by `bearer_gate` which security's gate
hands /api/v1 requests carrying that header to; a session cookie still works, but its writes need
the CSRF header and our Origin like every other cookie request. A token never opens a page: the
gate only asks us on /api/v1 paths. Errors are RFC 9457 problem documents built from the typed
domain errors. Each request counts against a per-token and a per-address window (429 +
Retry-After), apart from the sign-in throttle.
"""

from __future__ import annotations

import logging
import os

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException

from app import tokens
from app.errors import Forbidden
from app.errors import StackpilotError
from app.web.context import store
from app.web.security import ROLES
from app.web.security import client_address

log = logging.getLogger(__name__)

bp = Blueprint("apiv1", __name__, url_prefix="/api/v1")
PROBLEM = "application/problem+json"
PROBLEM_BASE = "/api/v1/reference#problem-"
HTTP_TITLES = {
    400: "Bad request",
    401: "Authentication needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Check the input",
    428: "Precondition required",
    429: "Too many requests",
}


def problem(status: int, title: str, detail: str, kind: str = "", headers: dict | None = None, **extra):
    """An RFC 9457 problem document."""
    body = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        **extra,
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def _kind(e: StackpilotError) -> str:
    name = type(e).__name__
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


@bp.errorhandler(StackpilotError)
def _domain_error(e: StackpilotError):
    headers = {}
    if retry := getattr(e, "retry_after", None):
        headers["Retry-After"] = str(int(retry))
    extra = {}
    if e.detail and g.get("user") is not None and ROLES.get(g.user.role, 0) >= ROLES["admin"]:
        extra["output"] = e.detail  # Compose output can quote .env values: admins only
    return problem(e.status, e.title, e.message, _kind(e), headers, **extra)


@bp.errorhandler(HTTPException)
def _http_error(e: HTTPException):
    code = e.code or 500
    headers = {}
    if code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="stackpilot"'
    detail = (
        e.description
        if code not in (404, 405)
        else {
            404: "There is nothing at this address (or it is not yours to see).",
            405: "This address does not accept that method.",
        }[code]
    )
    if code == 401:
        detail = "Send `Authorization: Bearer <token>` (make one on your account page) or sign in."
    return problem(code, HTTP_TITLES.get(code, e.name), detail, headers=headers)


@bp.errorhandler(Exception)
def _unexpected(e: Exception):
    log.exception("unexpected API error on %s %s", request.method, request.path)
    return problem(500, "Unexpected error", "Stackpilot hit an unexpected error; the details are in its log.")


# -- who is calling ----------------------------------------------------------------------------------
def limits() -> dict[str, tokens.RateLimit]:
    return current_app.extensions["stackpilot.api_limits"]


def bearer_gate():
    """security._gate hands us /api/v1 requests with a bearer token: authenticate, limit, check the role.
    No cookie is read (the session plays no part), so no CSRF check is needed: a browser never
    adds this header by itself."""
    g.user = None
    address = client_address()
    limits()["address"].hit("addr:" + address)
    plain = request.headers.get("Authorization", "")[7:].strip()
    found = tokens.authenticate(store(), current_app.secret_key, plain, address)
    if found is None:
        return problem(
            401,
            "Authentication needed",
            "The token is unknown, revoked or expired.",
            "invalid-token",
            {"WWW-Authenticate": 'Bearer realm="stackpilot", error="invalid_token"'},
        )
    token, user = found
    g.user, g.api_token = user, token
    limits()["token"].hit(f"token:{token.id}")
    if request.endpoint is None:
        return None
    view = current_app.view_functions.get(request.endpoint)
    role = getattr(view, "stackpilot_role", None)
    if role is not None and ROLES.get(user.role, 0) < ROLES[role]:
        raise Forbidden(f"This needs the {role} role; this token has {user.role}.")
    return None


@bp.before_request
def _cookie_callers():
    """Session callers (the pages' own fetches, curl with a cookie) are limited per address too."""
    if g.get("api_token") is None:
        limits()["address"].hit("addr:" + client_address())


def actor() -> str:
    """The audit name: the user, and the token's name when a token acts."""
    token = g.get("api_token")
    return f"{g.user.username} (token {token.name})" if token is not None else g.user.username


def init_app(app: Flask) -> None:
    per_token = int(app.config.get("API_RATE_LIMIT") or os.environ.get("STACKPILOT_API_RATE_LIMIT", "300"))
    per_address = int(
        app.config.get("API_ADDRESS_LIMIT") or os.environ.get("STACKPILOT_API_ADDRESS_LIMIT", str(per_token * 2))
    )
    app.extensions["stackpilot.api_limits"] = {
        "token": tokens.RateLimit(per_token),
        "address": tokens.RateLimit(per_address),
    }
    app.extensions["stackpilot.bearer_gate"] = bearer_gate
    from app.web.apiv1 import account
    from app.web.apiv1 import metrics

    app.register_blueprint(account.bp)
    metrics.init_app(app)


from app.web.apiv1 import config  # noqa: E402,F401
from app.web.apiv1 import openapi  # noqa: E402,F401
from app.web.apiv1 import views  # noqa: E402,F401  (registers routes on bp)
