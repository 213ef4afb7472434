"""Start-up settings, read once from the environment and checked before anything serves.

A bad value stops start-up with one clear line (SettingsError), never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.errors import SettingsError

SECRET_KEY_FILE = "secret-key"


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 9000
    data_dir: Path = Path("data")
    stack_dir: Path | None = None
    stacks_dir: Path | None = None  # the stacks root: each subfolder with a compose file is a stack
    secret_key: str = ""
    docker_host: str | None = None
    threads: int = 96
    max_log_sockets: int = 48
    # Worker threads that streams (log sockets, downloads, terminals) can never take: pages answer.
    reserved_threads: int = 16
    max_log_sockets_per_user: int = 8
    max_downloads_per_user: int = 2
    max_terminals_per_user: int = 2
    # Memory for password checks in flight (128 MiB each): 256 fits the shipped 512 MiB limit.
    password_memory_mib: int = 256
    # Addresses or names (resolved at start, re-resolved every minute) of the proxy we believe.
    trusted_proxies: tuple[str, ...] = ()
    # Host names this server answers to; empty: hostnames below + loopback + the machine's addresses.
    allowed_hosts: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    session_idle_minutes: int = 120
    admin_user: str = "admin"
    admin_password_file: Path | None = None
    compose_command: tuple[str, ...] = field(default_factory=tuple)
    backups_keep: int = 30
    # Our container's id when detection cannot see it (tests, unusual runtimes): app/engine/self.py
    self_container_id: str = ""

    @property
    def database_path(self) -> Path:
        return self.data_dir / "stackpilot.sqlite3"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")


def _proxies(raw: str) -> tuple[str, ...]:
    """IP addresses, networks, or service names (the stack's Caddy: `caddy`) resolved later."""
    out = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            if not HOSTNAME.match(item) or item.replace(".", "").isdigit():
                raise SettingsError(
                    f"STACKPILOT_TRUSTED_PROXIES: {item!r} is not an IP address, network or host name"
                ) from None
            out.append(item.lower().rstrip("."))
    return tuple(out)


def _hosts(raw: str, name: str) -> tuple[str, ...]:
    """Host names without scheme or port; `*` allows any (only behind a proxy that checks)."""
    out = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        host = item.split("://", 1)[-1].split("/", 1)[0]
        if host.startswith("["):  # [::1]:9000
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        if not host:  # ":8010" is a port only (plain HTTP on the LAN): no name to add
            continue
        if host != "*" and not HOSTNAME.match(host):
            try:
                host = str(ipaddress.ip_address(host))
            except ValueError:
                raise SettingsError(f"{name}: {item!r} is not a host name") from None
        out.append(host.lower().rstrip("."))
    return tuple(out)


def load_secret_key(data_dir: Path) -> str:
    """The session key: generated on first start and kept in the data dir, mode 0600."""
    path = data_dir / SECRET_KEY_FILE
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables (STACKPILOT_*, MANAGEMENT_SECRET_KEY, DOCKER_HOST)."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("STACKPILOT_DATA_DIR") or "data").expanduser().absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SettingsError(f"STACKPILOT_DATA_DIR {str(data_dir)!r} cannot be created: {e.strerror}") from None
    if not os.access(data_dir, os.W_OK):
        raise SettingsError(f"STACKPILOT_DATA_DIR {str(data_dir)!r} is not writable")

    stack_dir = None
    if raw := env.get("STACKPILOT_STACK_DIR", "").strip():
        stack_dir = Path(raw).expanduser().absolute()
        if not stack_dir.is_dir():
            raise SettingsError(f"STACKPILOT_STACK_DIR {raw!r} is not a folder")

    stacks_dir = None
    if raw := env.get("STACKPILOT_STACKS_DIR", "").strip():
        stacks_dir = Path(raw).expanduser().absolute()
        if not stacks_dir.is_dir():
            raise SettingsError(f"STACKPILOT_STACKS_DIR {raw!r} is not a folder")

    password_file = None
    if raw := env.get("STACKPILOT_ADMIN_PASSWORD_FILE", "").strip():
        password_file = Path(raw)
        if not password_file.is_file():
            raise SettingsError(f"STACKPILOT_ADMIN_PASSWORD_FILE {raw!r} is not a readable file")

    compose = tuple(env.get("STACKPILOT_COMPOSE", "").split())

    self_id = env.get("STACKPILOT_SELF_CONTAINER_ID", "").strip()
    if self_id and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", self_id):
        raise SettingsError("STACKPILOT_SELF_CONTAINER_ID must be a container id or name")

    secret_key = env.get("MANAGEMENT_SECRET_KEY", "").strip()
    if secret_key and len(secret_key) < 32:
        raise SettingsError("MANAGEMENT_SECRET_KEY must be at least 32 characters")
    if not secret_key:
        try:
            secret_key = load_secret_key(data_dir)
        except OSError as e:
            raise SettingsError(f"cannot keep the session key in {str(data_dir)!r}: {e.strerror}") from None

    threads = _int(env, "STACKPILOT_THREADS", 96, 8, 1024)
    reserved = _int(env, "STACKPILOT_RESERVED_THREADS", max(4, threads // 6), 2, threads - 4)

    return Settings(
        host=env.get("STACKPILOT_HOST", "").strip() or "0.0.0.0",
        port=_int(env, "STACKPILOT_PORT", 9000, 1, 65535),
        data_dir=data_dir,
        stack_dir=stack_dir,
        stacks_dir=stacks_dir,
        secret_key=secret_key,
        docker_host=env.get("DOCKER_HOST") or None,
        threads=threads,
        max_log_sockets=_int(env, "STACKPILOT_MAX_LOG_SOCKETS", 48, 1, 1000),
        reserved_threads=reserved,
        max_log_sockets_per_user=_int(env, "STACKPILOT_MAX_LOG_SOCKETS_PER_USER", 8, 1, 1000),
        max_downloads_per_user=_int(env, "STACKPILOT_MAX_DOWNLOADS_PER_USER", 2, 1, 100),
        max_terminals_per_user=_int(env, "STACKPILOT_MAX_TERMINALS_PER_USER", 2, 1, 100),
        password_memory_mib=_int(env, "STACKPILOT_PASSWORD_MEMORY_MIB", 256, 128, 1 << 20),
        trusted_proxies=_proxies(env.get("STACKPILOT_TRUSTED_PROXIES", "")),
        allowed_hosts=_hosts(env.get("STACKPILOT_ALLOWED_HOSTS", ""), "STACKPILOT_ALLOWED_HOSTS"),
        hostnames=_hosts(env.get("MANAGEMENT_HOSTNAME", ""), "MANAGEMENT_HOSTNAME"),
        session_idle_minutes=_int(env, "STACKPILOT_SESSION_IDLE_MINUTES", 120, 1, 60 * 24 * 30),
        admin_user=env.get("STACKPILOT_ADMIN_USER", "").strip() or "admin",
        admin_password_file=password_file,
        compose_command=compose,
        backups_keep=_int(env, "STACKPILOT_BACKUPS_KEEP", 30, 1, 1000),
        self_container_id=self_id,
    )
