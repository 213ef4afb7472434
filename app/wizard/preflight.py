"""Preflight: what must be true of this machine before the stack can start, each with a fix.

Every check returns a row (pass / warn / fail, the reason, the fix). Checks never write.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app import compose
from app.engine import Engine
from app.engine.self import own_container_id
from app.errors import StackpilotError
from app.stack import Stack
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
        info = engine.call(lambda c: c.info(), "engine info")
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


def compose_check() -> Check:
    try:
        version = compose.compose_version()
    except StackpilotError as e:
        return Check(
            "compose",
            "Docker Compose",
            "fail",
            e.message,
            "Install Docker Compose v2.20 or newer (the Stackpilot image ships one).",
        )
    return Check(
        "compose", "Docker Compose", "pass", f"Version {version} (2.20 or newer is needed for include:)."
    )


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
        data = engine.call(lambda c: c.api.inspect_container(container), "own container")
    except StackpilotError:
        return Check(
            "mounts",
            title,
            "warn",
            "Stackpilot seems to run in a container but the engine does not "
            "know it, so the mount cannot be checked.",
            f"Make sure {stack_dir} is mounted at the same path as on the host.",
        )
    return compare_mounts(data.get("Mounts") or [], stack_dir)


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
            f"Mount it at the same path: `- {host_path}:{host_path}` and set "
            f"STACKPILOT_STACK_DIR={host_path}.",
        )
    return Check("mounts", title, "pass", f"Mounted at the same path as on the host ({target}).")


def files_check(stack: Stack, recipe: Recipe) -> Check:
    title = "Compose files"
    missing = [f for f in stack.files if not (stack.directory / f).is_file()]
    if missing or not stack.files:
        return Check(
            "files",
            title,
            "fail",
            f"Missing: {', '.join(missing) or 'no compose file found'}.",
            "Put the stack's compose files in the stack folder, or choose them in the Stack step.",
        )
    try:
        config = compose.config_json(stack)
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
            )
        return Check(
            "files", title, "fail", e.message, "Fix the compose file Compose names below.", detail=e.detail
        )
    n = len(config.get("services") or {})
    return Check(
        "files", title, "pass", f"Valid: {n} service{'s' if n != 1 else ''} ({', '.join(stack.files)})."
    )


def disk_check(stack_dir: Path) -> Check:
    free = shutil.disk_usage(stack_dir).free
    text = f"{free / GIB:.1f} GiB free where the stack folder is."
    if free < DISK_FAIL_GIB * GIB:
        return Check(
            "disk", "Free disk space", "fail", text, "Free some space (docker system prune, old images)."
        )
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


def ports_check(engine: Engine, stack: Stack, config: dict | None) -> Check:
    title = "Host ports"
    if config is None:
        return Check("ports", title, "warn", "Not checkable before the compose files are valid.", "")
    wanted = published_ports(config)
    if not wanted:
        return Check("ports", title, "pass", "The stack publishes no fixed host ports.")
    try:
        rows = engine.call(lambda c: c.api.containers(), "containers")
    except StackpilotError as e:
        return Check("ports", title, "warn", e.message, "")
    taken = []
    for row in rows:
        if (row.get("Labels") or {}).get("com.docker.compose.project") == stack.project:
            continue  # our own stack's containers (a re-run) will be replaced
        for p in row.get("Ports") or []:
            key = f"{p.get('PublicPort')}/{p.get('Type') or 'tcp'}"
            if p.get("PublicPort") and key in wanted:
                owner = ((row.get("Names") or ["?"])[0]).lstrip("/")
                taken.append(f"{key.split('/')[0]} ({', '.join(wanted[key])}) is used by {owner}")
    if taken:
        return Check(
            "ports",
            title,
            "fail",
            "Taken: " + "; ".join(sorted(set(taken))) + ".",
            "Stop those containers, or change the ports in the override file.",
        )
    return Check(
        "ports",
        title,
        "pass",
        f"All {len(wanted)} published port{'s' if len(wanted) != 1 else ''} are free of other containers.",
    )


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


def run(engine: Engine, stack: Stack, recipe: Recipe, container: str | None = None) -> Report:
    """All checks, in the order a person fixes them."""
    report = Report()
    engine_row, info = engine_check(engine)
    report.checks.append(engine_row)
    report.checks.append(compose_check())
    if info:
        report.checks.append(mount_check(engine, stack.directory, container))
    files = files_check(stack, recipe)
    report.checks.append(files)
    report.checks.append(disk_check(stack.directory))
    config = None
    if files.status == "pass":
        try:
            config = compose.config_json(stack, all_profiles=True)
        except StackpilotError:
            config = None
    if info:
        report.checks.append(ports_check(engine, stack, config))
        gpu, report.nvidia, report.amd = gpu_checks(info)
        report.checks.extend(gpu)
        report.checks.append(ram_check(info, recipe))
    return report
