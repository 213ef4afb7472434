"""The security boundary of the web layer: sessions, roles, CSRF/Origin checks, headers.

The Docker socket is root on the host, so every route needs a session unless marked @public,
and every unsafe request (and every WebSocket handshake) must come from our own origin.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import secrets
import socket
import threading
import time
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
from app.shares import Shares
from app.store import User
from app.web.context import settings
from app.web.context import store

log = logging.getLogger(__name__)
ROLES = {"viewer": 1, "operator": 2, "admin": 3}
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
HSTS = "max-age=31536000"
RESOLVE_EVERY = 60.0
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
    session.clear()
    sid = secrets.token_urlsafe(32)
    store().add_session(sid, user.id, client=client_address())
    session["sid"] = sid
    session.permanent = True
    g.user = user


def logout_user() -> None:
    if sid := session.get("sid"):
        store().delete_session(sid)
    session.clear()
    g.user = None


class TrustedProxies:
    """The proxies whose X-Forwarded-* headers we believe: addresses, networks, or service names.

    A name (the stack's Caddy: `caddy`) is resolved at start and again every minute, so the
    trust follows the one container it names, not every container on a private range.
    """

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(e) for e in entries if _is_network(e)]
        self.names = [e for e in entries if not _is_network(e)]
        self._resolved: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        self._at = float("-inf")
        self._lock = threading.Lock()
        if self.names:
            self._resolve()

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def _resolve(self) -> None:
        found = []
        for name in self.names:
            try:
                for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP):
                    found.append(ipaddress.ip_address(info[4][0].split("%")[0]))
            except OSError as e:
                log.warning("trusted proxy %r does not resolve (yet): %s", name, e)
        self._resolved, self._at = found, time.monotonic()

    def __contains__(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if any(ip in n for n in self.networks):
            return True
        if self.names:
            with self._lock:
                if time.monotonic() - self._at > RESOLVE_EVERY:
                    self._resolve()
                return ip in self._resolved
        return False


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry)
    except ValueError:
        return False
    return True


def _trusted() -> TrustedProxies:
    return current_app.extensions["stackpilot.trusted_proxies"]


def from_trusted_proxy() -> bool:
    trusted = _trusted()
    return bool(trusted) and (request.remote_addr or "") in trusted


def client_address() -> str:
    """The real client address: X-Forwarded-For is believed only from a trusted proxy."""
    remote = request.remote_addr or ""
    if not from_trusted_proxy():
        return remote
    trusted = _trusted()
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    # Walk from the nearest hop back; the first address that is not a trusted proxy is the client.
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else remote


def request_is_https() -> bool:
    if request.scheme == "https":
        return True
    return from_trusted_proxy() and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def request_host() -> str:
    """The Host the browser used (from the trusted proxy's X-Forwarded-Host when behind it)."""
    host = request.host
    if from_trusted_proxy():
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    return host


def own_origin() -> str:
    scheme = "https" if request_is_https() else "http"
    return f"{scheme}://{request_host()}"


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the default port filled in; None when malformed."""
    try:
        parts = urlsplit(origin)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower().rstrip("."), port


def host_allowed(host: str) -> bool:
    """DNS rebinding defence: only names this server is known by. An IP literal cannot be
    rebound (rebinding needs a name the attacker controls), so addresses always pass."""
    name = _origin_key(f"http://{host}")
    if name is None:
        return False
    hostname = name[1].strip("[]")
    allowed: frozenset[str] = current_app.extensions["stackpilot.allowed_hosts"]
    if "*" in allowed or hostname in allowed:
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def allowed_hosts(settings: Any) -> frozenset[str]:
    """STACKPILOT_ALLOWED_HOSTS, or by default: the configured names, loopback and this machine."""
    if settings.allowed_hosts:
        return frozenset(settings.allowed_hosts)
    names = set(settings.hostnames) | set(LOOPBACK_NAMES)
    if settings.host not in ("0.0.0.0", "::", ""):
        names.add(settings.host.lower())
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower().rstrip("."))
    return frozenset(names)


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
    # Scheme, host and port, all three: http://host is another origin than https://host.
    theirs = _origin_key(origin)
    return theirs is not None and theirs == _origin_key(own_origin())


def is_websocket_handshake() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _load_user() -> None:
    g.user = None
    sid = session.get("sid")
    if sid:
        # Opening a socket is activity; what it streams later is not (it never touches the session).
        g.user = store().session_user(sid, settings().session_idle_minutes * 60)
        if g.user is None:
            session.pop("sid", None)


def _gate() -> Any:
    """Runs before every request: Host, session, login requirement, CSRF and Origin checks."""
    if not host_allowed(request_host()):
        abort(
            400, "This server does not answer to that host name. Use its configured address (STACKPILOT_ALLOWED_HOSTS)."
        )
    if request.endpoint == "static":
        return None
    if request.path.startswith("/api/v1/") and request.headers.get("Authorization", "")[:7].lower() == "bearer ":
        return current_app.extensions["stackpilot.bearer_gate"]()  # app/web/apiv1: a token, not a cookie
    _load_user()  # also for a 404, so its page keeps the signed-in navigation
    if request.endpoint is None:  # 404: let the error handler answer
        return None
    view = current_app.view_functions.get(request.endpoint)
    is_public = request.endpoint == "static" or getattr(view, "stackpilot_public", False)
    if not is_public and getattr(view, "stackpilot_until_claimed", False):
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
    if request_is_https():
        h.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint != "static":
        # Every answer but our own static files may carry a secret (.env values, backups, logs):
        # never cached, whatever the view or send_file set (send_file says public, max-age=3600).
        h["Cache-Control"] = "no-store"
        h.pop("Expires", None)
        h.add("Vary", "HX-Request")
    return response


class _SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie session (it holds only the server-side session id and the CSRF token),
    marked Secure whenever the request came over HTTPS (directly or via the trusted proxy)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request_is_https()


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["stackpilot.trusted_proxies"] = TrustedProxies(settings.trusted_proxies)
    app.extensions["stackpilot.allowed_hosts"] = allowed_hosts(settings)
    # Streams (log sockets, downloads, terminals) share the threads minus the reserve for pages.
    app.extensions["stackpilot.shares"] = Shares(
        settings.threads - settings.reserved_threads,
        per_user={
            "logs": settings.max_log_sockets_per_user,
            "download": settings.max_downloads_per_user,
            "terminal": settings.max_terminals_per_user,
        },
        per_kind={"logs": settings.max_log_sockets},
        reserved=settings.reserved_threads,
    )
    app.before_request(_gate)
    app.after_request(_headers)

    app.session_interface = _SessionInterface()

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "current_user": g.get("user"), "has_role": has_role}
