"""Which service of the stack proxies Stackpilot: the way in that actions must keep alive.

Why: behind the stack's Caddy, a stack Down (or a recreate after an .env change) that takes Caddy
with it locks the user out: Stackpilot keeps running, but nobody can reach it until someone runs
`up -d caddy` on the host. The proxy is the container whose address on one of our networks is a
trusted proxy (STACKPILOT_TRUSTED_PROXIES: the include file says `caddy`, a service name resolved
by Docker's DNS, or an address/network); its compose labels name its project and service.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine import Engine
from app.engine.files import container_at
from app.engine.files import container_networks
from app.engine.self import PROJECT_LABEL
from app.engine.self import SERVICE_LABEL
from app.errors import StackpilotError

CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Proxy:
    project: str
    service: str
    container: str
    address: str


_cache: dict[tuple, tuple[float, Proxy | None]] = {}
_lock = threading.Lock()


def _addresses(entry: str) -> list[str]:
    """The addresses a trusted-proxy entry stands for: itself, or what Docker's DNS says for a name."""
    try:
        net = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        try:
            return sorted({info[4][0] for info in socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)})
        except OSError:
            return []
    return [str(net.network_address)] if net.num_addresses == 1 else []


def find_proxy(engine: Engine, own_container: str | None, trusted: Sequence[str]) -> Proxy | None:
    """The compose service proxying us (None outside a container, without trusted proxies, or when
    none of them is a container on our networks). Cached briefly; engine failures give None."""
    if not own_container or not trusted:
        return None
    key = (id(engine), own_container, tuple(trusted))
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    found = None
    try:
        networks = tuple(container_networks(engine, own_container))
        for entry in trusted:
            for address in _addresses(entry):
                peer = container_at(engine, address, networks)
                if peer and peer["id"] != own_container and peer["labels"].get(SERVICE_LABEL):
                    found = Proxy(
                        peer["labels"].get(PROJECT_LABEL, ""), peer["labels"][SERVICE_LABEL], peer["id"], address
                    )
                    break
            if found:
                break
    except StackpilotError:
        found = None
    with _lock:
        _cache[key] = (now, found)
    return found


def proxy_service(engine: Engine, project: str, own_container: str | None, trusted: Sequence[str]) -> str | None:
    """The proxy's service name when it belongs to `project` (the stack being acted on), else None."""
    proxy = find_proxy(engine, own_container, trusted)
    return proxy.service if proxy and proxy.project == project else None
