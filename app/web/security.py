"""The security boundary of the web layer: sessions, roles, CSRF/Origin checks, headers.

The Docker socket is root on the host, so every route needs a session unless marked @public,
and every unsafe request (and every WebSocket handshake) must come from our own origin.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask import abort
from flask import current_app
from flask import g
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.sessions import SecureCookieSessionInterface

from app.errors import Forbidden
from app.store import User

ROLES = {"viewer": 1, "operator": 2, "admin": 3}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def public(view: Callable) -> Callable:
    """Mark a view as reachable without a session (login, setup claim, health, static)."""
    view.stackpilot_public = True
    return view


def public_until_claimed(view: Callable) -> Callable:
    """Reachable without a session only while no admin exists (the setup claim)."""
    view.stackpilot_until_claimed = True
    return view


def require_role(role: str) -> Callable[[Callable], Callable]:
    """Refuse the view (403) unless the signed-in user has at least `role`."""
    needed = ROLES[role]

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if g.get("claim_open"):  # a @public_until_claimed view before anyone claimed
                return view(*args, **kwargs)
            if user is None or ROLES.get(user.role, 0) < needed:
                raise Forbidden(f"This needs the {role} role.")
            return view(*args, **kwargs)

        wrapped.stackpilot_role = role
        return wrapped

    return decorator


def has_role(role: str) -> bool:
    user = g.get("user")
    return user is not None and ROLES.get(user.role, 0) >= ROLES[role]


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def login_user(user: User) -> None:
    """Start a fresh server-side session for user (a new id: no session fixation)."""
    from app.web import store

    session.clear()
    sid = secrets.token_urlsafe(32)
    store().add_session(sid, user.id, client=client_address())
    session["sid"] = sid
    session.permanent = True
    g.user = user


def logout_user() -> None:
    from app.web import store

    if sid := session.get("sid"):
        store().delete_session(sid)
    session.clear()
    g.user = None


def client_address() -> str:
    """The real client address: X-Forwarded-For is believed only from a trusted proxy."""
    remote = request.remote_addr or ""
    trusted = current_app.config["SETTINGS"].trusted_proxies
    if not trusted or not _in_networks(remote, trusted):
        return remote
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    # Walk from the nearest hop back; the first address that is not a trusted proxy is the client.
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop
    return hops[0] if hops else remote


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n) for n in networks)


def request_is_https() -> bool:
    if request.scheme == "https":
        return True
    trusted = current_app.config["SETTINGS"].trusted_proxies
    return bool(trusted) and _in_networks(request.remote_addr or "", trusted) and (
        request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    )


def own_origin() -> str:
    scheme = "https" if request_is_https() else "http"
    host = request.host
    if current_app.config["SETTINGS"].trusted_proxies and _in_networks(
        request.remote_addr or "", current_app.config["SETTINGS"].trusted_proxies
    ):
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
    return f"{scheme}://{host}"


def same_origin_request() -> bool:
    """True unless the browser tells us the request comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return site is not None or not is_websocket_handshake()
    if origin == "null":
        return False
    parts = urlsplit(origin)
    own = urlsplit(own_origin())
    return parts.netloc.lower() == own.netloc.lower() and (
        parts.scheme == own.scheme or not current_app.config.get("STRICT_ORIGIN_SCHEME", False)
    )


def is_websocket_handshake() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _load_user() -> None:
    from app.web import settings
    from app.web import store

    g.user = None
    sid = session.get("sid")
    if sid:
        g.user = store().session_user(sid, settings().session_idle_minutes * 60)
        if g.user is None:
            session.pop("sid", None)


def _gate() -> Any:
    """Runs before every request: session, login requirement, CSRF and Origin checks."""
    if request.endpoint == "static":
        return None
    _load_user()  # also for a 404, so its page keeps the signed-in navigation
    if request.endpoint is None:  # 404: let the error handler answer
        return None
    view = current_app.view_functions.get(request.endpoint)
    is_public = request.endpoint == "static" or getattr(view, "stackpilot_public", False)
    if not is_public and getattr(view, "stackpilot_until_claimed", False):
        from app.web import store

        is_public = g.claim_open = store().count_users("admin") == 0

    if request.method in UNSAFE_METHODS or is_websocket_handshake():
        if not same_origin_request():
            abort(403, "Cross-site request refused.")
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(403, "The form expired or did not come from this page. Reload and try again.")

    if is_public:
        return None
    if g.user is not None:
        # The role is checked here too, so a WebSocket is refused before its handshake.
        role = getattr(view, "stackpilot_role", None)
        if role is not None and not has_role(role):
            raise Forbidden(f"This needs the {role} role.")
        return None
    if is_websocket_handshake() or request.path.startswith("/api/"):
        abort(401)
    target = url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
    if request.headers.get("HX-Request"):
        return "", 200, {"HX-Redirect": target}
    return redirect(target)


def _headers(response: Any) -> Any:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.endpoint != "static":
        h.setdefault("Cache-Control", "no-store")
        h.add("Vary", "HX-Request")
    return response


class _SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie session (it holds only the server-side session id and the CSRF token),
    marked Secure whenever the request came over HTTPS (directly or via the trusted proxy)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request_is_https()


def init_app(app: Flask) -> None:
    app.before_request(_gate)
    app.after_request(_headers)

    app.session_interface = _SessionInterface()

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "current_user": g.get("user"), "has_role": has_role}
