"""HTTPS: Caddy's local root certificate for download, how to trust it, and a check of every name.

Thin views: app/stack/proxy.py finds the Caddy that proxies us, app/engine/files.py reads its root
certificate through the Docker API, app/stack/caddy.py fetches each hostname through that Caddy
and says in words why one fails. The page renders without engine calls; the certificate's state
and the check are fragments it asks for after load, so a slow engine never holds the page.
"""

from __future__ import annotations

import hashlib
import ssl
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import Blueprint
from flask import Response
from flask import render_template

from app.engine import Engine
from app.engine.files import container_networks
from app.engine.files import first_file
from app.engine.self import PROJECT_LABEL
from app.engine.self import SERVICE_LABEL
from app.engine.self import own_container_id
from app.errors import NotFound
from app.errors import StackpilotError
from app.stack import caddy
from app.stack.envfile import EnvDocument
from app.stack.proxy import find_proxy
from app.web.context import current_stack
from app.web.context import settings
from app.web.context import stack_engine
from app.web.security import require_role

bp = Blueprint("https", __name__, url_prefix="/https")

CHECK_WORKERS = 8


@dataclass(frozen=True)
class CaddyFound:
    container: str
    service: str
    address: str  # where Stackpilot reaches its port 443
    how: str  # how we know it is the proxy (said on the page)


def _find_caddy(engine: Engine) -> CaddyFound | None:
    """The proxy in front of us (trusted proxy on our networks), else the current stack's `caddy`."""
    s = settings()
    own = own_container_id(s.self_container_id)
    proxy = find_proxy(engine, own, s.trusted_proxies)
    if proxy is not None:
        return CaddyFound(
            proxy.container,
            proxy.service,
            proxy.address,
            f"the trusted proxy at {proxy.address} (service {proxy.service!r})",
        )
    stack = current_stack()
    if stack is None:
        return None

    def look(client):
        found = client.containers.list(
            filters={"label": [f"{PROJECT_LABEL}={stack.project}", f"{SERVICE_LABEL}=caddy"]}
        )
        return found[0].id if found else None

    cid = engine.call(look, "find the stack's caddy")
    if not cid:
        return None
    address = next((ip for ip in container_networks(engine, cid).values() if ip), "")
    return CaddyFound(cid, "caddy", address, f"the service 'caddy' of {stack.project}")


def _root(engine: Engine) -> tuple[CaddyFound | None, str, bytes]:
    found = _find_caddy(engine)
    if found is None:
        return None, "", b""
    path, pem = first_file(engine, found.container, caddy.ROOT_CERT_PATHS)
    return found, path, pem


def _fingerprint(pem: bytes) -> str:
    """SHA-256 of the certificate (DER), as browsers and `openssl x509 -fingerprint -sha256` show it."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode("ascii", "replace"))).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _hostnames() -> list[str]:
    """Stackpilot's own names, then the stack's *_HOSTNAME values that are names (not ":8001")."""
    names = list(settings().hostnames)
    stack = current_stack()
    if stack is not None:
        try:
            doc = EnvDocument.load(stack.directory / ".env")
            values = doc.values()
        except (OSError, StackpilotError):
            values = {}
        for key, value in values.items():
            host = (value or "").strip().strip('"').strip("'")
            if key.endswith("_HOSTNAME") and host and not host.startswith(":") and host not in names:
                names.append(host)
    return names


@bp.get("/")
@require_role("admin")
def index():
    return render_template("https/page.html", names=_hostnames())


@bp.get("/root")
@require_role("admin")
def root_status():
    """The certificate card: where it was found, its fingerprint, the download button."""
    try:
        found, path, pem = _root(stack_engine())
    except StackpilotError as e:
        return render_template("https/_root.html", problem=e.message, found=None)
    if found is None:
        return render_template(
            "https/_root.html",
            found=None,
            problem="No Caddy found: none of STACKPILOT_TRUSTED_PROXIES is a container on Stackpilot's "
            "networks, and the stack has no service named caddy.",
        )
    return render_template("https/_root.html", found=found, path=path, fingerprint=_fingerprint(pem), problem=None)


@bp.get("/root.crt")
@require_role("admin")
def root_download():
    _, _, pem = _root(stack_engine())
    if not pem:
        raise NotFound("No Caddy found to take the root certificate from.")
    return Response(
        pem,
        mimetype="application/x-x509-ca-cert",
        headers={"Content-Disposition": 'attachment; filename="caddy-local-root.crt"'},
    )


@bp.post("/check")
@require_role("admin")
def check():
    """Fetch each hostname through Caddy (SNI and Host = the name): LAN names against Caddy's root,
    public ones against the public CAs."""
    names = _hostnames()
    engine = stack_engine()
    try:
        found, _, pem = _root(engine)
    except StackpilotError as e:
        return render_template("https/_check.html", results=[], problem=e.message)
    if found is None or not found.address:
        return render_template(
            "https/_check.html", results=[], problem="No Caddy found to check through (see the certificate above)."
        )
    with tempfile.NamedTemporaryFile(suffix=".crt") as cafile:
        cafile.write(pem)
        cafile.flush()

        def one(name: str) -> caddy.CheckResult:
            return caddy.check_https(name, found.address, 443, cafile.name if caddy.is_private_name(name) else None)

        with ThreadPoolExecutor(max_workers=CHECK_WORKERS) as pool:
            results = list(pool.map(one, names))
    return render_template("https/_check.html", results=results, problem=None, via=found)
