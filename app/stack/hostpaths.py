"""Host paths when Compose runs inside Stackpilot's container.

Why: Compose expands `~` in a bind source with the HOME of the process that runs it. Inside our
container HOME is /data, so `~/.flowise` became /data/.flowise on the host and the service's data
seemed gone. The include file passes the host user's HOME (``STACKPILOT_HOST_HOME: ${HOME}``),
and Compose runs with it; without it, a `~` source is refused with the fix before Compose runs.
Relative sources are safe: the stack folder is mounted at its own host path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from app.errors import InvalidInput

HOST_HOME_ENV = "STACKPILOT_HOST_HOME"
# Compose commands that create containers (and so resolve bind sources).
CREATING = frozenset({"up", "create", "run"})
# `~/x:/target` (short syntax, block or flow list) or `source: ~/x` (long syntax)
_TILDE = re.compile(r"""(?:(?:^|[\s\[,"'])(~[^\s"':,\]]*):/|source:\s*["']?(~[^\s"',\]]*))""", re.M)


def host_home(environ: dict[str, str] | None = None) -> str | None:
    """The host user's HOME as the install passed it (an absolute path), else None."""
    value = (environ if environ is not None else os.environ).get(HOST_HOME_ENV, "").strip()
    return value if value.startswith("/") else None


def in_container() -> bool:
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def compose_env(env: dict[str, str]) -> dict[str, str]:
    """The Compose subprocess environment with HOME set to the host user's (when known), so `~`
    and ${HOME} mean what they mean on the host; Compose's own config stays in our HOME."""
    home = host_home(env)
    if home and env.get("HOME") != home:
        env.setdefault("DOCKER_CONFIG", os.path.join(env.get("HOME") or "/tmp", ".docker"))
        env["HOME"] = home
    return env


def tilde_sources(directory: Path, files: Sequence[str]) -> list[str]:
    """Every `~` bind source written in the stack's compose files ("~/.flowise in docker-compose.yml")."""
    found = []
    for name in files or ("docker-compose.yml",):
        try:
            text = (Path(directory) / name).read_text(errors="replace")
        except OSError:
            continue
        found += [f"{a or b} in {name}" for a, b in _TILDE.findall(text)]
    return found


def check_binds(
    directory: Path,
    files: Sequence[str],
    args: Sequence[str],
    environ: dict[str, str] | None = None,
    container: bool | None = None,
) -> None:
    """Refuse (InvalidInput) a Compose command that would create containers with `~` bind sources
    resolved against Stackpilot's own HOME instead of the host user's."""
    if not args or args[0] not in CREATING:
        return
    if container is None:
        container = in_container()
    if not container or host_home(environ):
        return
    tilde = tilde_sources(directory, files)
    if tilde:
        raise InvalidInput(
            f"`~` in a bind source would expand to Stackpilot's own HOME inside its container, not yours: "
            f"{'; '.join(sorted(set(tilde)))}. Fix: pass your HOME to Stackpilot (the include file does: "
            f"{HOST_HOME_ENV}: ${{HOME}}; recreate Stackpilot from your shell with "
            "`docker compose up -d stackpilot`), or write the host path out in full."
        )
