"""Published ports as a person can use them: ranges folded, a link only where the browser can
reach the port and speaks its protocol, plain text (with a copy button) everywhere else.

Flask-free: the web layer says which host name links may use (`link_host`), this module decides
per port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass

from app.stack.model import Port

# Ports whose protocol a browser does not speak (databases, brokers, caches): never a link.
NOT_HTTP = frozenset(
    {
        21,
        22,
        25,
        53,
        110,
        143,
        389,
        445,
        587,
        636,
        993,
        995,
        1433,
        1521,
        1883,
        2181,
        3306,
        4222,
        5222,
        5432,
        5672,
        6379,
        6380,
        6432,
        7000,
        7001,
        7687,
        8883,
        9092,
        11211,
        25565,
        26257,
        27017,
        27018,
        28015,
        33060,
    }
)
HTTPS = frozenset({443, 4443, 8443, 9443, 10443})
# Images whose main port is not HTTP even when it is published on an unusual host port.
NOT_HTTP_IMAGES = (
    "postgres",
    "postgis",
    "mysql",
    "mariadb",
    "redis",
    "valkey",
    "keydb",
    "mongo",
    "memcached",
    "rabbitmq",
    "mosquitto",
    "neo4j",
    "cassandra",
    "scylla",
    "zookeeper",
    "nats",
    "kafka",
    "clickhouse",
    "timescale",
    "pgbouncer",
    "dragonfly",
    "cockroach",
)
NATIVE_NOT_HTTP = frozenset(
    {5432, 3306, 6379, 27017, 11211, 5672, 1883, 7687, 9042, 2181, 4222, 9092, 9000, 26257, 6432, 8883}
)


@dataclass(frozen=True)
class PortView:
    """One published port, or a folded range of them, as the table shows it."""

    label: str  # "8080–8099→8080–8099", "127.0.0.1:5432→5432"
    kind: str  # "link" | "text" | "server" (loopback only) | "any" (ephemeral, not yet known)
    url: str = ""  # for "link"
    copy: str = ""  # what the copy button copies ("host:port")
    members: tuple[str, ...] = ()  # the full list when folded (shown on demand)

    @property
    def folded(self) -> bool:
        return len(self.members) > 1


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _range(text: str) -> tuple[int, int] | None:
    """ "8080" -> (8080, 8080), "8000-8010" -> (8000, 8010), else None."""
    first, dash, last = text.partition("-")
    a, b = _int(first), _int(last) if dash else _int(first)
    return (a, b) if a is not None and b is not None and a <= b else None


def loopback(host_ip: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost": only a browser on the server itself reaches it."""
    try:
        return ipaddress.ip_address(host_ip.strip("[]")).is_loopback
    except ValueError:
        return host_ip == "localhost"


def all_interfaces(host_ip: str) -> bool:
    return host_ip in ("", "0.0.0.0", "::", "[::]")


def scheme(container_port: str, host_port: int, image: str, protocol: str = "tcp") -> str:
    """ "http", "https" or "" (not a web port: a database, a broker, UDP)."""
    if protocol != "tcp":
        return ""
    target = _range(container_port)
    inner = target[0] if target else None
    if host_port in HTTPS or inner in HTTPS:
        return "https"
    if host_port in NOT_HTTP or inner in NOT_HTTP:
        return ""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    if inner in NATIVE_NOT_HTTP and any(name.startswith(db) for db in NOT_HTTP_IMAGES):
        return ""
    return "http"


def fold(ports: Sequence[Port]) -> list[list[Port]]:
    """Consecutive ports (same address and protocol, host and container both counting up by one)
    in one group; Compose lists a `8080-8099:8080-8099` range as twenty ports."""
    groups: list[list[Port]] = []
    for p in ports:
        if groups:
            last = groups[-1][-1]
            lh, ph = _int(last.host_port), _int(p.host_port)
            lc, pc = _int(last.container_port), _int(p.container_port)
            if (
                None not in (lh, ph, lc, pc)
                and last.host_ip == p.host_ip
                and last.protocol == p.protocol
                and ph == lh + 1
                and pc == lc + 1
            ):
                groups[-1].append(p)
                continue
        groups.append([p])
    return groups


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first}–{last}"


def _group_label(group: list[Port]) -> str:
    if len(group) == 1:
        return group[0].label.replace("-", "–")
    head, tail = group[0], group[-1]
    host = "" if all_interfaces(head.host_ip) else f"{head.host_ip}:"
    proto = "" if head.protocol == "tcp" else f"/{head.protocol}"
    return f"{host}{_span(head.host_port, tail.host_port)}→{_span(head.container_port, tail.container_port)}{proto}"


def view(group: list[Port], image: str, link_host: str | None) -> PortView:
    """How one group shows: a link where it can work, else text with what to copy and why."""
    head = group[0]
    label = _group_label(group)
    members = tuple(p.label for p in group) if len(group) > 1 else ()
    span = _range(head.host_port)
    if span is None:
        return PortView(label, "any", members=members)
    if loopback(head.host_ip):
        if not (link_host and loopback(link_host)):  # a browser on the server itself reaches it
            return PortView(label, "server", copy=f"{head.host_ip}:{span[0]}", members=members)
        host = link_host
    elif all_interfaces(head.host_ip):
        host = link_host
    else:
        host = f"[{head.host_ip}]" if ":" in head.host_ip else head.host_ip
    if not host:
        return PortView(label, "text", copy=str(span[0]), members=members)
    copy = f"{host}:{span[0]}"
    how = scheme(head.container_port, span[0], image, head.protocol)
    if not how:
        return PortView(label, "text", copy=copy, members=members)
    default = (how == "http" and span[0] == 80) or (how == "https" and span[0] == 443)
    url = f"{how}://{host}/" if default else f"{how}://{host}:{span[0]}/"
    return PortView(label, "link", url=url, copy=copy, members=members)


def views(ports: Iterable[Port], image: str, link_host: str | None) -> list[PortView]:
    return [view(g, image, link_host) for g in fold(list(ports))]


def link_host(
    browser_host: str, *, engine_host: str | None = None, via_proxy: bool = False, proxy_here: bool = False
) -> str | None:
    """The host name links to ports published on all interfaces may use, or None (no link).

    A remote engine publishes on its own host. Behind a reverse proxy the name the browser used
    is the proxy's: it is used only when the proxy runs on the engine's host (a container there),
    so the ports really are published on that name."""
    if engine_host:
        return engine_host
    if via_proxy and not proxy_here:
        return None
    return browser_host or None
