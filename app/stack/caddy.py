"""Caddy in front of a stack: which names get Caddy's own CA, and the sites that give it to them.

Why: Caddy gets certificates from Let's Encrypt by default, which cannot work for names only a LAN
knows (``n8n.home.lan``): the handshake fails. Such names need ``tls internal``. Stackpilot's own
snippet (docker/caddy-stackpilot.conf) takes that from ``MANAGEMENT_TLS``. A recipe stack's own
sites are written by its Caddyfile, which we do not edit; what we can write is a file it imports
(local-ai-packaged: ``import /etc/caddy/addons/*.conf`` from ``./caddy-addon``). Caddy refuses
one name in two TLS policies, and a Caddyfile with a global ``email`` puts every site without a
``tls`` directive into the ACME policy, so the LAN name must live in our file only: one site per
name with ``tls internal``, proxying to the upstream the stack's Caddyfile gives that variable,
while the variable itself keeps the stack's port default (``:8001``).

Also here: where Caddy keeps its local root certificate, and a check that fetches each hostname
through Caddy and says in words why one fails (name, chain, refused, timeout).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import InvalidInput
from app.stack import atomic

LAN_FILE = "stackpilot-lan.conf"
# Inside the official caddy image (XDG_DATA_HOME=/data), then Debian's package, then $HOME.
ROOT_CERT_PATHS = (
    "/data/caddy/pki/authorities/local/root.crt",
    "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt",
    "/root/.local/share/caddy/pki/authorities/local/root.crt",
)
ROOT_CERT_SUFFIX = "caddy/pki/authorities/local/root.crt"
# Suffixes no public CA will ever sign (RFC 6762, RFC 8375, ICANN's .internal) plus the usual LAN ones.
PRIVATE_SUFFIXES = (
    ".lan",
    ".home",
    ".local",
    ".localhost",
    ".internal",
    ".home.arpa",
    ".localdomain",
    ".intranet",
    ".corp",
    ".private",
    ".test",
    ".invalid",
    ".example",
)
_HOST_RE = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_SITE_RE = re.compile(r"^\s*\{\$([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}\s*\{\s*$")
_PROXY_RE = re.compile(r"^\s*reverse_proxy\s+([^\s{]+)")


def _bare(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    if host.startswith("[") and "]" in host:
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_private_name(host: str) -> bool:
    """True for names a public CA cannot sign: no dot, a LAN suffix, or a private/loopback address."""
    name = _bare(host)
    if not name:
        return False
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return "." not in name or name.endswith(PRIVATE_SUFFIXES)
    return ip.is_private or ip.is_loopback or ip.is_link_local


def tls_directive(host: str) -> str:
    """The value for MANAGEMENT_TLS: ``tls internal`` for a LAN name, empty (ACME) for a public one."""
    return "tls internal" if host and is_private_name(host) else ""


@dataclass(frozen=True)
class LanSite:
    var: str
    hostname: str
    upstream: str


@dataclass
class LanSites:
    path: Path
    sites: list[LanSite] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (variable, why)


def site_upstreams(caddyfile: str) -> dict[str, str]:
    """{VAR: upstream} for every site whose address is ``{$VAR}`` and which reverse-proxies somewhere."""
    out: dict[str, str] = {}
    lines = caddyfile.splitlines()
    i = 0
    while i < len(lines):
        m = _SITE_RE.match(lines[i])
        i += 1
        if not m:
            continue
        depth = 1
        while i < len(lines) and depth:
            line = lines[i].split("#", 1)[0]
            if depth == 1 and (p := _PROXY_RE.match(line)) and m.group(1) not in out:
                out[m.group(1)] = p.group(1)
            depth += line.count("{") - line.count("}")
            i += 1
    return out


def split_lan_names(
    directory: Path,
    names: Mapping[str, str],
    private: bool,
    addon_dir: str = "caddy-addon",
    caddyfile: str = "Caddyfile",
) -> tuple[dict[str, str], dict[str, str]]:
    """(for .env, for the addon): in Private mode, a name whose variable is a `{$VAR}` site of the
    stack's Caddyfile goes to the addon (write_lan_sites) and stays out of .env, when the stack has
    the addon folder; everything else goes to .env as before."""
    names = {k: v for k, v in names.items() if v}
    directory = Path(directory)
    if not private or not (directory / addon_dir).is_dir():
        return names, {}
    try:
        sites = site_upstreams((directory / caddyfile).read_text(encoding="utf-8"))
    except OSError:
        return names, {}
    lan = {k: v for k, v in names.items() if k in sites and is_private_name(v)}
    return {k: v for k, v in names.items() if k not in lan}, lan


def render_lan_sites(sites: Iterable[LanSite]) -> str:
    """The addon file: one site per LAN name, Caddy's own CA, the same upstream as the stack's site."""
    parts = [
        "# Written by Stackpilot (LAN names get Caddy's own certificate). Rewritten by the setup wizard;",
        "# the stack's .env keeps these services' hostname variables at their port defaults.",
        "",
    ]
    for site in sites:
        parts += [
            f"# {site.var}",
            f"{site.hostname} {{",
            "\ttls internal",
            f"\treverse_proxy {site.upstream} {{",
            "\t\tflush_interval -1",
            "\t}",
            "}",
            "",
        ]
    return "\n".join(parts)


def write_lan_sites(
    directory: Path, names: Mapping[str, str], addon_dir: str = "caddy-addon", caddyfile: str = "Caddyfile"
) -> LanSites:
    """Write <addon_dir>/stackpilot-lan.conf so each chosen LAN name is served with ``tls internal``.

    names: {VARIABLE: hostname}. A variable the stack's Caddyfile does not use as a site address,
    or a name that is not a hostname, is skipped with the reason; nothing is written half way."""
    directory = Path(directory)
    source = directory / caddyfile
    try:
        upstreams = site_upstreams(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"The stack's Caddyfile ({caddyfile}) cannot be read: {exc.strerror or exc}.") from exc
    target_dir = directory / addon_dir
    if not target_dir.is_dir():
        raise InvalidInput(f"The folder {addon_dir}/ that the stack's Caddy imports does not exist.")
    result = LanSites(path=target_dir / LAN_FILE)
    seen: set[str] = set()
    for var, hostname in names.items():
        host = _bare(hostname or "")
        if not host:
            continue
        if not _HOST_RE.match(host) or host in seen:
            result.skipped.append((var, f"{hostname!r} is not a hostname (or is used twice)"))
        elif var not in upstreams:
            result.skipped.append((var, f"the stack's {caddyfile} has no site {{${var}}} with a reverse_proxy"))
        else:
            seen.add(host)
            result.sites.append(LanSite(var, host, upstreams[var]))
    atomic.atomic_write(result.path, render_lan_sites(result.sites).encode(), mode=0o644)
    return result


# -- the HTTPS check ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    hostname: str
    ok: bool
    reason: str  # "ok" | "name" | "chain" | "refused" | "timeout" | "tls" | "unreachable"
    detail: str


def check_https(
    hostname: str, address: str, port: int = 443, cafile: str | None = None, timeout: float = 4.0
) -> CheckResult:
    """Fetch https://hostname/ from Caddy at address:port (SNI and Host = hostname) and say what fails.

    cafile: Caddy's local root for LAN names; None: the system's public CAs."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except ConnectionRefusedError:
        return CheckResult(
            hostname, False, "refused", f"Connection refused at {address}:{port}: Caddy does not listen there."
        )
    except TimeoutError:
        return CheckResult(hostname, False, "timeout", f"No answer from {address}:{port} within {timeout:g} s.")
    except OSError as exc:
        return CheckResult(
            hostname, False, "unreachable", f"{address}:{port} cannot be reached: {exc.strerror or exc}."
        )
    try:
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            tls.sendall(f"HEAD / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
            status = tls.recv(64).decode("latin-1").split("\r\n", 1)[0]
    except ssl.SSLCertVerificationError as exc:
        text = exc.verify_message or str(exc)
        if "mismatch" in text or "not valid for" in text:
            return CheckResult(hostname, False, "name", f"The certificate is not for {hostname}: {text}.")
        where = "Caddy's local root" if cafile else "a public certificate authority"
        return CheckResult(hostname, False, "chain", f"The certificate does not chain to {where}: {text}.")
    except ssl.SSLError as exc:
        why = (
            f"Caddy has no site for {hostname}: a service's LAN name goes in the setup wizard's HTTPS step "
            "(Private), Stackpilot's in MANAGEMENT_HOSTNAME; recreate Caddy after its files change."
            if cafile
            else f"Caddy has no certificate for {hostname} yet: its log shows Let's Encrypt's answer (the name's "
            "DNS must point here, ports 80 and 443 open to the internet)."
        )
        return CheckResult(hostname, False, "tls", f"The TLS handshake failed ({exc.reason or exc}). {why}")
    except TimeoutError:
        return CheckResult(hostname, False, "timeout", f"The handshake with {address}:{port} took over {timeout:g} s.")
    except OSError as exc:
        return CheckResult(hostname, False, "unreachable", f"The connection broke: {exc.strerror or exc}.")
    finally:
        raw.close()
    return CheckResult(hostname, True, "ok", f"HTTPS works ({status or 'no status line'}).")
