"""Preflight: what must be true of this machine before the stack can start, each with a fix.

Every check returns a row (pass / warn / fail, the reason, the fix). Checks never write.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.compose import Runners
from app.engine import Engine
from app.engine import host
from app.engine.self import own_container_id
from app.errors import StackpilotError
from app.stack import Stack
from app.stack import compose_files_in
from app.stack import hostpaths
from app.stack import variables as usage_scan
from app.stack.envfile import EnvDocument
from app.wizard import preview
from app.wizard.recipe import Recipe

GIB = 1024**3
DISK_WARN_GIB = 20
DISK_FAIL_GIB = 2


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: str  # pass | warn | fail | info
    reason: str
    fix: str = ""
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    nvidia: bool = False
    amd: bool = False

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def possible_profiles(self, recipe: Recipe, found: list[str]) -> dict[str, str]:
        """profile -> "" when offered, else why not (hardware the checks did not find)."""
        out = {}
        for name in found:
            need = recipe.profiles.get(name, "")
            if need == "nvidia" and not self.nvidia:
                out[name] = "no NVIDIA runtime in the Docker engine"
            elif need == "amd" and not self.amd:
                out[name] = "no /dev/kfd and /dev/dri on this machine"
            else:
                out[name] = ""
        return out


def engine_check(engine: Engine) -> tuple[Check, dict]:
    try:
        info = host.info(engine)
        version = engine.version()
    except StackpilotError as e:
        return Check(
            "engine",
            "Docker engine",
            "fail",
            e.message,
            "Mount the Docker socket into Stackpilot (/var/run/docker.sock) or set DOCKER_HOST, "
            "and check that the Docker service runs (systemctl status docker).",
        ), {}
    return Check("engine", "Docker engine", "pass", f"Reachable, version {version}."), info


def compose_check(runners: Runners) -> Check:
    try:
        version = runners.compose_version()
    except StackpilotError as e:
        return Check(
            "compose",
            "Docker Compose",
            "fail",
            e.message,
            "Install Docker Compose v2.20 or newer (the Stackpilot image ships one).",
        )
    return Check("compose", "Docker Compose", "pass", f"Version {version} (2.20 or newer is needed for include:).")


def mount_check(engine: Engine, stack_dir: Path, container: str | None = None) -> Check:
    """The stack folder must be mounted at the same path as on the host: Compose resolves relative
    bind mounts against the path we give it, and the engine reads that path on the host."""
    title = "Stack folder path"
    container = container if container is not None else own_container_id()
    if container is None:
        return Check(
            "mounts",
            title,
            "pass",
            f"Stackpilot runs directly on the host, so {stack_dir} is the host's own path.",
        )
    try:
        mounts = host.container_mounts(engine, container)
    except StackpilotError:
        return Check(
            "mounts",
            title,
            "warn",
            "Stackpilot seems to run in a container but the engine does not know it, so the mount cannot be checked.",
            f"Make sure {stack_dir} is mounted at the same path as on the host.",
        )
    return compare_mounts(mounts, stack_dir)


def compare_mounts(mounts: list[dict], stack_dir: Path) -> Check:
    """Judge our container's mounts (as the engine reports them) for the stack folder."""
    title = "Stack folder path"
    target = str(stack_dir).rstrip("/")
    best = None
    for m in mounts:
        dest = (m.get("Destination") or "").rstrip("/")
        if dest and (target == dest or target.startswith(dest + "/")):
            if best is None or len(dest) > len(best["Destination"].rstrip("/")):
                best = m
    if best is None:
        return Check(
            "mounts",
            title,
            "fail",
            f"{stack_dir} is not mounted from the host; the engine cannot see the files Compose refers to.",
            "Mount the stack folder at the same path: `- /path/on/host:/path/on/host` and set "
            "STACKPILOT_STACK_DIR to that path.",
        )
    dest = best["Destination"].rstrip("/")
    host_path = (best.get("Source") or "").rstrip("/") + target[len(dest) :]
    if best.get("Type") == "volume":
        return Check(
            "mounts",
            title,
            "fail",
            f"{stack_dir} is in a named volume, so it has no path on the host that Compose could bind.",
            "Mount a host folder instead, at the same path.",
        )
    if host_path != target:
        return Check(
            "mounts",
            title,
            "fail",
            f"The stack folder is {host_path} on the host but {target} in here. Relative bind "
            "mounts in the compose files would point at the wrong place.",
            f"Mount it at the same path: `- {host_path}:{host_path}` and set STACKPILOT_STACK_DIR={host_path}.",
        )
    return Check("mounts", title, "pass", f"Mounted at the same path as on the host ({target}).")


def files_check(
    runners: Runners, stack: Stack, recipe: Recipe, env_bytes: bytes | None = None
) -> tuple[Check, dict | None]:
    """Compose reads the chosen files (with the .env the wizard will write, when there is none
    yet or it changes); returns the row and the config of the chosen profiles."""
    title = "Compose files"
    missing = [f for f in stack.files if not (stack.directory / f).is_file()]
    if not stack.files and (found := compose_files_in(stack.directory)):
        return Check(
            "files",
            title,
            "warn",
            f"No default compose file (compose.yaml, docker-compose.yml); this folder has {len(found)} others: "
            + ", ".join(found[:6])
            + ("…" if len(found) > 6 else "")
            + ".",
            "Tick the ones to use in the Stack step; the checks run again with them at Review.",
        ), None
    if missing or not stack.files:
        return Check(
            "files",
            title,
            "fail",
            f"Missing: {', '.join(missing) or 'no compose file found'}.",
            "Put the stack's compose files in the stack folder, or choose them in the Stack step.",
        ), None
    drafted = env_bytes is not None and not stack.env_path.is_file()
    try:
        with preview.draft_stack(stack, env_bytes) as seen:
            config = runners.for_stack(seen).config_json()
            config = _map_paths(config, seen, stack)
    except StackpilotError as e:
        fetched = [p for p in recipe.prepare if p.kind == "git" and not (stack.directory / p.dest).exists()]
        if fetched:
            return Check(
                "files",
                title,
                "warn",
                f"Not checkable yet: {', '.join(p.dest + '/' for p in fetched)} "
                "is fetched at launch (a preparation step of the recipe), and the compose files "
                "include it.",
                "Nothing to do; the launch checks the files again.",
                detail=e.detail,
            ), None
        asked = _required_unset(stack, env_bytes)
        if asked:
            return Check(
                "files",
                title,
                "warn",
                "Not checkable yet: the compose files refuse to start without "
                + ", ".join(asked)
                + ", which the Configuration step asks for (or generates).",
                "Nothing to do now; the Review step checks the files again with your values.",
                detail=e.detail,
            ), None
        return Check(
            "files", title, "fail", e.message, "Fix the compose file Compose names below.", detail=e.detail
        ), None
    n = len(config.get("services") or {})
    with_env = " with the .env the wizard will write" if drafted else ""
    return Check(
        "files", title, "pass", f"Valid{with_env}: {n} service{'s' if n != 1 else ''} ({', '.join(stack.files)})."
    ), config


def _required_unset(stack: Stack, env_bytes: bytes | None) -> list[str]:
    """Variables the compose files require (`${VAR:?}`) that the .env to be written leaves empty."""
    usage = usage_scan.scan(stack.directory, list(stack.files))
    if env_bytes is not None:
        values = EnvDocument.parse(env_bytes).values()
    else:
        values = EnvDocument.load(stack.env_path).values()
    return sorted(k for k, ref in usage.refs.items() if ref.required is not None and not values.get(k))


def _map_paths(config: dict, seen: Stack, stack: Stack) -> dict:
    """Bind sources of a preview, as paths of the real stack folder."""
    if seen is stack:
        return config
    for spec in (config.get("services") or {}).values():
        for vol in (spec or {}).get("volumes") or []:
            if isinstance(vol, dict) and vol.get("type") == "bind" and vol.get("source"):
                vol["source"] = preview.real_path(str(vol["source"]), seen, stack)
    return config


def disk_check(stack_dir: Path) -> Check:
    free = shutil.disk_usage(stack_dir).free
    text = f"{free / GIB:.1f} GiB free where the stack folder is."
    if free < DISK_FAIL_GIB * GIB:
        return Check("disk", "Free disk space", "fail", text, "Free some space (docker system prune, old images).")
    if free < DISK_WARN_GIB * GIB:
        return Check(
            "disk",
            "Free disk space",
            "warn",
            text + f" Images and models may need more than {DISK_WARN_GIB} GiB.",
            "Free some space before pulling large images.",
        )
    return Check("disk", "Free disk space", "pass", text)


def published_ports(config: dict) -> dict[str, list[str]]:
    """host port -> services publishing it, from a compose config (fixed TCP/UDP host ports only)."""
    out: dict[str, list[str]] = {}
    for name, spec in (config.get("services") or {}).items():
        for p in (spec or {}).get("ports") or []:
            published = str(p.get("published") or "")
            if published.isascii() and published.isdigit():
                out.setdefault(f"{published}/{p.get('protocol') or 'tcp'}", []).append(name)
    return out


def _bind_free(port: int, protocol: str, host_ip: str) -> str | None:
    """Try to bind the port as the engine would: None when free, else why not ("in use",
    "not checkable")."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    address = host_ip if host_ip not in ("", "0.0.0.0", "::") else ("::" if family == socket.AF_INET6 else "0.0.0.0")
    try:
        with socket.socket(family, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return "in use"
        return "not checkable"  # e.g. a port below 1024 for a non-root user, an address not here
    return None


def ports_check(engine: Engine, stack: Stack, config: dict | None, in_container: bool = False) -> Check:
    """Every fixed host port the chosen files and profiles publish must be free: of other
    containers (the engine's list) and of processes on this machine (a real bind)."""
    title = "Host ports"
    if config is None:
        return Check("ports", title, "warn", "Not checkable before the compose files are valid.", "")
    wanted = published_ports(config)
    if not wanted:
        return Check("ports", title, "pass", "The stack publishes no fixed host ports.")
    try:
        rows = host.published_ports(engine)
    except StackpilotError as e:
        return Check("ports", title, "warn", e.message, "")
    taken = []
    ours = set()
    for row in rows:
        key = f"{row.port}/{row.protocol}"
        if row.project == stack.project:
            ours.add(key)  # our own stack's containers (a re-run) will be replaced
        elif key in wanted:
            taken.append(f"{row.port} ({', '.join(wanted[key])}) is used by the container {row.container}")
    ips = _host_ips(config)
    for key, services in wanted.items():
        if key in ours or any(key.split("/")[0] + " " in t for t in taken):
            continue
        port, protocol = key.split("/")
        if _bind_free(int(port), protocol, ips.get(key, "")) == "in use":
            taken.append(f"{port} ({', '.join(services)}) is used by a process on this machine")
    if taken:
        return Check(
            "ports",
            title,
            "fail",
            "Taken: " + "; ".join(sorted(set(taken))) + ".",
            "Stop what holds them (`ss -ltnp` names host processes), or publish other ports in an override file.",
        )
    n = len(wanted)
    where = (
        ("other containers (processes of the host itself cannot be seen from inside Stackpilot's container)")
        if in_container
        else "other containers and of processes on this machine"
    )
    return Check("ports", title, "pass", f"All {n} published port{'s' if n != 1 else ''} are free of {where}.")


def _host_ips(config: dict) -> dict[str, str]:
    out = {}
    for spec in (config.get("services") or {}).values():
        for p in (spec or {}).get("ports") or []:
            published = str(p.get("published") or "")
            if published.isascii() and published.isdigit():
                out[f"{published}/{p.get('protocol') or 'tcp'}"] = str(p.get("host_ip") or "")
    return out


# `~/x:/target` (short syntax, block or flow list) or `source: ~/x` (long syntax)
_TILDE = re.compile(r"""(?:(?:^|[\s\[,"'])(~[^\s"':,\]]*):/|source:\s*["']?(~[^\s"',\]]*))""", re.M)


def binds_check(stack: Stack, recipe: Recipe, config: dict | None, in_container: bool) -> Check:
    """Bind sources: a missing one becomes an empty folder (Compose creates it silently); `~`
    expands to the HOME of whoever runs Compose, which inside Stackpilot's container is not the
    host user's."""
    title = "Bind mounts"
    if config is None:
        return Check("binds", title, "warn", "Not checkable before the compose files are valid.", "")
    fetched = [str((stack.directory / p.dest).resolve()) for p in recipe.prepare]
    missing = []
    resolved = []  # every bind's host path, as Compose resolved it (issue 13)
    host_home = hostpaths.host_home() if in_container else None
    for name, spec in (config.get("services") or {}).items():
        for vol in (spec or {}).get("volumes") or []:
            if not isinstance(vol, dict) or vol.get("type") != "bind":
                continue
            source = str(vol.get("source") or "")
            resolved.append(f"{source} → {vol.get('target')} ({name})")
            if (
                host_home
                and source.startswith(host_home.rstrip("/") + "/")
                and not source.startswith(str(stack.directory))
            ):
                continue  # in the host user's HOME, which this container does not see
            if not source or os.path.exists(source) or any(source.startswith(f) for f in fetched):
                continue
            missing.append(f"{source} ({name})")
    paths = (
        (
            "Host paths: "
            + "; ".join(resolved[:20])
            + (f"; and {len(resolved) - 20} more" if len(resolved) > 20 else "")
            + "."
        )
        if resolved
        else ""
    )
    tilde = []
    for f in stack.files:
        try:
            text = (stack.directory / f).read_text(errors="replace")
        except OSError:
            continue
        tilde += [f"{a or b} in {f}" for a, b in _TILDE.findall(text)]
    home = os.path.expanduser("~")
    if tilde and host_home:  # Compose runs with the host user's HOME (app/stack/hostpaths.py)
        paths = f"`~` is your HOME on the host ({host_home}), passed in by the include file. {paths}"
        tilde = []
    if tilde:
        where = (
            f"Stackpilot's own HOME inside its container ({home}), not the host user's"
            if in_container
            else f"the HOME of the user Stackpilot runs as ({home})"
        )
        return Check(
            "binds",
            title,
            "fail" if in_container else "warn",
            f"`~` in a bind source expands to {where}: {'; '.join(sorted(set(tilde)))}.",
            "Write the host path out in full (e.g. /home/me/.flowise), or a path relative to the stack folder.",
        )
    if missing:
        shown = missing[:8] + ([f"and {len(missing) - 8} more"] if len(missing) > 8 else [])
        return Check(
            "binds",
            title,
            "warn",
            "Missing on this machine (Compose would create empty folders in their place): " + "; ".join(shown) + ".",
            "Create or copy these files and folders first (the stack's instructions name them), or "
            "fix the paths in the compose files or .env.",
        )
    return Check("binds", title, "pass", f"Every bind-mounted file and folder exists. {paths}".strip())


def limits_check(config: dict | None, info: dict) -> Check:
    """CPU limits above the engine's CPUs make the engine refuse the container; memory limits
    above its RAM are never reached."""
    title = "Resource limits"
    if config is None or not info:
        return Check("limits", title, "warn", "Not checkable before the compose files are valid.", "")
    cpus = float(info.get("NCPU") or 0)
    memory = int(info.get("MemTotal") or 0)
    over_cpu, over_mem = [], []
    for name, spec in (config.get("services") or {}).items():
        limits = (((spec or {}).get("deploy") or {}).get("resources") or {}).get("limits") or {}
        try:
            want_cpu = float(limits.get("cpus") or spec.get("cpus") or 0)
        except (TypeError, ValueError):
            want_cpu = 0
        try:
            want_mem = int(limits.get("memory") or spec.get("mem_limit") or 0)
        except (TypeError, ValueError):
            want_mem = 0
        if cpus and want_cpu > cpus:
            over_cpu.append(f"{name} asks for {want_cpu:g} CPUs")
        if memory and want_mem > memory:
            over_mem.append(f"{name} may use {want_mem / GIB:.1f} GiB")
    if over_cpu:
        return Check(
            "limits",
            title,
            "fail",
            f"The engine has {cpus:g} CPUs: " + "; ".join(over_cpu) + ". Docker refuses such a container.",
            f"Lower deploy.resources.limits.cpus to {cpus:g} or less in an override file (or the .env "
            "variable that sets it).",
        )
    if over_mem:
        return Check(
            "limits",
            title,
            "warn",
            f"The engine has {memory / GIB:.1f} GiB of memory: " + "; ".join(over_mem) + ".",
            "The limit is never reached; lower it if the service should be stopped earlier.",
        )
    return Check("limits", title, "pass", "CPU and memory limits fit this engine.")


def gpu_checks(info: dict, dev: Path = Path("/dev")) -> tuple[list[Check], bool, bool]:
    nvidia = "nvidia" in (info.get("Runtimes") or {})
    amd = (dev / "kfd").exists() and (dev / "dri").exists()
    rows = [
        Check(
            "nvidia",
            "NVIDIA GPU",
            "pass" if nvidia else "info",
            "The nvidia runtime is installed in the Docker engine."
            if nvidia
            else "No nvidia runtime in the Docker engine: the NVIDIA profile is not offered.",
            "" if nvidia else "Install the NVIDIA Container Toolkit and restart Docker to use an NVIDIA GPU.",
        ),
        Check(
            "amd",
            "AMD GPU",
            "pass" if amd else "info",
            "/dev/kfd and /dev/dri are present."
            if amd
            else "No /dev/kfd and /dev/dri here: the AMD profile is not offered.",
            "" if amd else "Install ROCm drivers on the host to use an AMD GPU.",
        ),
    ]
    return rows, nvidia, amd


def ram_check(info: dict, recipe: Recipe) -> Check:
    total = info.get("MemTotal") or 0
    if not total:
        return Check("ram", "Memory", "warn", "The engine did not report its memory.", "")
    text = f"{total / GIB:.1f} GiB of RAM."
    if recipe.min_ram_gib and total < recipe.min_ram_gib * GIB:
        return Check(
            "ram",
            "Memory",
            "warn",
            text + f" This stack wants {recipe.min_ram_gib:g} GiB or more.",
            "Expect slow models or containers killed for memory; use smaller models or add RAM.",
        )
    return Check("ram", "Memory", "pass", text)


def run(
    runners: Runners,
    engine: Engine,
    stack: Stack,
    recipe: Recipe,
    container: str | None = None,
    env_bytes: bytes | None = None,
) -> Report:
    """All checks, in the order a person fixes them. env_bytes: the .env the wizard will write
    (checked in a preview folder; the stack folder is never written)."""
    report = Report()
    engine_row, info = engine_check(engine)
    report.checks.append(engine_row)
    report.checks.append(compose_check(runners))
    in_container = (container if container is not None else own_container_id()) is not None
    if info:
        report.checks.append(mount_check(engine, stack.directory, container))
    files, config = files_check(runners, stack, recipe, env_bytes)
    report.checks.append(files)
    report.checks.append(disk_check(stack.directory))
    if info:
        report.checks.append(ports_check(engine, stack, config, in_container))
    report.checks.append(binds_check(stack, recipe, config, in_container))
    if info:
        report.checks.append(limits_check(config, info))
        gpu, report.nvidia, report.amd = gpu_checks(info)
        report.checks.extend(gpu)
        report.checks.append(ram_check(info, recipe))
    return report
