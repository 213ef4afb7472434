"""A stand-in override for a real stack: the same services, dependencies, conditions, profiles,
networks and volumes, with the local busybox image doing the work.

Why: the corpus stacks' images are not reachable here (no registry but PyPI/Debian/npm), and
their build contexts and bind-mounted configs are not in the corpus. What Stackpilot must get right
on them (the project, the table, the start order, health gates, one-shots, volumes) does not
depend on what runs inside, so each service becomes a busybox sleeper:

- image busybox (pull_policy never, no build), entrypoint ``sleep``; a one-shot that something
  waits on (service_completed_successfully) runs ``true`` and exits 0 (restart "no");
- a healthcheck that passes (``true`` every second) where the service had one;
- ``!reset`` for what this machine cannot give (devices, GPU reservations and CPU limits in
  ``deploy``, runtime, user names busybox lacks, platform, logging drivers, security options);
- ports, fixed subnets and static addresses reset (no host collisions), bind sources pointed at fresh temp folders (and config or
  secret files the corpus does not ship at a stand-in file), fixed container,
  network and volume names given the test project's prefix (so the leftovers check sees them),
  external volumes and networks made by Compose (and removed by ``down -v``).

``override(config, project, busybox, binds, one_shots) -> str`` is the YAML text; ``config`` is
the stack's ``docker compose config --format json`` (active profiles) as Stackpilot reads it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# Checked every second (Docker 20.10 has no start_interval); a service another one waits on to be
# healthy every 300 ms, so each gate of a chain (supabase, sentry) opens sooner without 49 checks a
# second on 2 cores.
HEALTH = {"test": ["CMD", "/bin/true"], "interval": "1s", "timeout": "5s", "retries": 30, "start_period": "0s"}
GATE_INTERVAL = "300ms"
RESET_IF_PRESENT = (
    "build",
    "user",
    "platform",
    "deploy",
    "devices",
    "runtime",
    "gpus",
    "cpus",
    "cpuset",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpu_rt_runtime",
    "cpu_rt_period",
    "logging",
    "security_opt",
    "external_links",
    "command",
    "device_cgroup_rules",
    "cgroup_parent",
    "storage_opt",
    "isolation",
    "mem_reservation",
    "memswap_limit",
    "userns_mode",
    "ulimits",
)


class Tagged:
    """A YAML node with a Compose merge tag (!reset, !override)."""

    def __init__(self, tag: str, value: object = None) -> None:
        self.tag, self.value = tag, value


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # no &anchors: the file is read by people too
        return True


def _tagged(dumper: yaml.SafeDumper, data: Tagged):
    if isinstance(data.value, list):
        return dumper.represent_sequence(data.tag, data.value)
    if isinstance(data.value, dict):
        return dumper.represent_mapping(data.tag, data.value)
    return dumper.represent_scalar(data.tag, "")


_Dumper.add_representer(Tagged, _tagged)


def _escape(value):
    """Compose interpolates the override too: a literal `$` must be `$$`."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    return value


def _volumes(name: str, mounts: list, binds: Path) -> list:
    out = []
    for i, mount in enumerate(mounts or []):
        if not isinstance(mount, dict):
            continue
        if mount.get("type") == "bind":
            source = binds / name / str(i)
            source.mkdir(parents=True, exist_ok=True)
            entry = {"type": "bind", "source": str(source), "target": mount["target"]}
            if mount.get("read_only"):
                entry["read_only"] = True
            out.append(entry)
        elif mount.get("type") in ("volume", "tmpfs"):
            out.append(_escape({k: v for k, v in mount.items() if k != "consistency"}))
    return out


def _service(name: str, spec: dict, project: str, busybox: str, binds: Path, one_shot: bool, gate: bool) -> dict:
    out: dict = {key: Tagged("!reset") for key in RESET_IF_PRESENT if key in spec}
    out.update(
        {
            "image": busybox,
            "pull_policy": "never",
            "entrypoint": ["/bin/true"] if one_shot else ["/bin/sleep", "3600"],
            "stop_grace_period": "1s",
        }
    )
    if one_shot:
        out["restart"] = "no"
    if "ports" in spec:
        out["ports"] = Tagged("!reset", [])
    if "volumes" in spec:
        out["volumes"] = Tagged("!override", _volumes(name, spec["volumes"], binds))
    if spec.get("container_name"):
        out["container_name"] = f"{project}-{spec['container_name']}"[:120]
    health = spec.get("healthcheck") or {}
    if health and not health.get("disable"):  # whole: start_interval needs Docker 25
        out["healthcheck"] = Tagged("!override", {**HEALTH, "interval": GATE_INTERVAL} if gate else dict(HEALTH))
    nets = spec.get("networks") or {}
    if isinstance(nets, dict) and any(
        (v or {}).get("ipv4_address") or (v or {}).get("ipv6_address") for v in nets.values()
    ):
        out["networks"] = Tagged(
            "!override",
            {
                k: _escape({a: b for a, b in (v or {}).items() if a not in ("ipv4_address", "ipv6_address")}) or None
                for k, v in nets.items()
            },
        )
    if str(spec.get("network_mode", "")).startswith("container:"):
        out["network_mode"] = Tagged("!reset")
    return out


def override(config: dict, project: str, busybox: str, binds: Path, one_shots: set[str]) -> str:
    """The stand-in override (YAML text) for the services of `config`."""
    gates = {
        dep
        for spec in (config.get("services") or {}).values()
        for dep, cond in ((spec or {}).get("depends_on") or {}).items()
        if (cond or {}).get("condition") == "service_healthy"
    }
    services = {
        name: _service(name, spec or {}, project, busybox, binds, name in one_shots, name in gates)
        for name, spec in (config.get("services") or {}).items()
    }
    doc: dict = {"services": services}
    for kind in ("volumes", "networks"):
        fixed = {}
        for key, spec in (config.get(kind) or {}).items():
            spec = spec or {}
            default = f"{project}_{key}"
            subnets = [c for c in ((spec.get("ipam") or {}).get("config") or []) if (c or {}).get("subnet")]
            if spec.get("external") or (spec.get("name") and spec["name"] != default) or subnets:
                entry: dict = {"name": _escape(default)}
                if "external" in spec:
                    entry["external"] = Tagged("!reset")
                if subnets:  # a fixed subnet collides like a fixed port: the engine picks one
                    entry["ipam"] = Tagged("!reset")
                fixed[key] = entry
        if fixed:
            doc[kind] = fixed
    for kind in ("configs", "secrets"):  # files the corpus does not ship (made by install scripts)
        missing = {}
        for key, spec in (config.get(kind) or {}).items():
            source = (spec or {}).get("file")
            if source and not Path(source).exists():
                stand_in = binds / f"{kind}-{key}"
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.write_text("stand-in\n")
                missing[key] = {"file": _escape(str(stand_in))}
        if missing:
            doc[kind] = missing
    return "# Stand-ins for the corpus 'comes up' test (tests/corpus/standins.py)\n" + yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000
    )
