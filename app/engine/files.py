"""Files inside containers, read through the Docker API's archive endpoint (no exec, no shell).

Why: Caddy's local root certificate lives in the Caddy container's data (pki/authorities/local/
root.crt); Stackpilot offers it for download without mounting Caddy's volume.
"""

from __future__ import annotations

import io
import tarfile

from app.engine import Engine
from app.errors import NotFound

MAX_BYTES = 256 * 1024


def read_file(engine: Engine, container: str, path: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of one regular file in a container; NotFound when it is missing or not a file."""

    def fetch(client) -> bytes:
        import docker.errors  # loaded with the client in hand

        try:
            stream, stat = client.api.get_archive(container, path)
        except docker.errors.NotFound:
            raise NotFound(f"{path} does not exist in container {container[:12]}.") from None
        if int(stat.get("size") or 0) > limit:
            raise NotFound(f"{path} in container {container[:12]} is larger than {limit // 1024} KiB.")
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                if member.isfile():
                    return tar.extractfile(member).read(limit)
                if member.issym() or member.islnk():
                    raise NotFound(f"{path} in container {container[:12]} is a link, not a file.")
        raise NotFound(f"{path} in container {container[:12]} is not a regular file.")

    return engine.call(fetch, f"read {path}")


def first_file(engine: Engine, container: str, paths: tuple[str, ...], limit: int = MAX_BYTES) -> tuple[str, bytes]:
    """The first of paths that exists in the container, as (path, bytes); NotFound naming them all."""
    for path in paths:
        try:
            return path, read_file(engine, container, path, limit)
        except NotFound:
            continue
    raise NotFound(f"None of {', '.join(paths)} exists in container {container[:12]}.")


def container_at(engine: Engine, address: str, networks: tuple[str, ...] = ()) -> dict | None:
    """The container holding address on one of networks (all networks when empty), as
    {"id", "name", "labels", "network"}; None when no container has it."""

    def look(client) -> dict | None:
        for net in client.api.networks():
            if networks and net["Name"] not in networks and net["Id"] not in networks:
                continue
            detail = client.api.inspect_network(net["Id"])
            for cid, ep in (detail.get("Containers") or {}).items():
                ips = {str(ep.get("IPv4Address") or "").split("/")[0], str(ep.get("IPv6Address") or "").split("/")[0]}
                if address in ips:
                    info = client.api.inspect_container(cid)
                    return {
                        "id": cid,
                        "name": info["Name"].lstrip("/"),
                        "labels": info["Config"].get("Labels") or {},
                        "network": net["Name"],
                    }
        return None

    return engine.call(look, f"find the container at {address}")


def container_networks(engine: Engine, container: str) -> dict[str, str]:
    """{network name: our IPv4 address} of a container."""

    def look(client) -> dict[str, str]:
        info = client.api.inspect_container(container)
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        return {name: str(n.get("IPAddress") or "") for name, n in nets.items()}

    return engine.call(look, "read the container's networks")
