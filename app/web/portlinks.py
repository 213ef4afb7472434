"""Presentation helpers of the services templates: `port_views(row)`, `image_ref(ref)`, `stack_files(stack)`.

`port_views(row)`: the host name port links may use, worked out
once per request (the browser's host, a remote engine's host, or none behind a proxy elsewhere);
the rule per port is app.stack.ports."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint
from flask import g

from app.engine.self import own_container_id
from app.errors import StackpilotError
from app.stack import default_files
from app.stack import imageref
from app.stack import ports
from app.stack.proxy import find_proxy
from app.web.context import settings
from app.web.context import stack_engine
from app.web.security import from_trusted_proxy
from app.web.security import own_origin

bp = Blueprint("portlinks", __name__)


def _engine_host() -> str | None:
    base = getattr(stack_engine(), "base_url", None) or ""
    if not base or base.startswith(("unix:", "npipe:")):
        return None
    host = urlsplit(base).hostname or ""
    if not host or ports.loopback(host):
        return None
    return f"[{host}]" if ":" in host else host


def _link_host() -> str | None:
    if "port_link_host" not in g:
        browser = urlsplit(own_origin()).hostname or "localhost"
        browser = f"[{browser}]" if ":" in browser else browser
        via_proxy = from_trusted_proxy()
        here = False
        if via_proxy:
            s = settings()
            try:
                here = find_proxy(stack_engine(), own_container_id(s.self_container_id), s.trusted_proxies) is not None
            except StackpilotError:
                here = False
        g.port_link_host = ports.link_host(browser, engine_host=_engine_host(), via_proxy=via_proxy, proxy_here=here)
    return g.port_link_host


@bp.app_template_global("port_views")
def port_views(row) -> list[ports.PortView]:
    """The row's published ports, folded, each a link only where it can work."""
    return ports.views(row.ports, row.image, _link_host())


@bp.app_template_global("image_ref")
def image_ref(ref: str) -> imageref.ImageRef:
    return imageref.parse(ref or "")


@bp.app_template_global("stack_files")
def stack_files(stack) -> tuple[tuple[str, ...], bool]:
    """The compose files Compose reads for the stack, and whether they are its defaults (none chosen)."""
    if stack is None:
        return (), True
    if stack.files:
        return tuple(stack.files), False
    return default_files(stack.directory), True
