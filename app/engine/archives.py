"""A volume's files as a tar stream, and a tar stream written back into a volume.

Why a created (never started) container: the SDK's archive API reads and writes the files of a
container's mounts without running anything in it, so no helper image is pulled and the service's
own image (already on the engine) is enough. The volume is mounted read-only for reading. Nothing
is buffered: `read_volume` yields the engine's chunks as they arrive, `write_volume` hands the
engine chunks it reads as it goes.

Emptying a volume before a restore is the one step that runs something: a container of the
service's own image runs `rm` through its `sh` (NoShell when the image has none).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager

from app.engine import Engine
from app.errors import NotFound
from app.errors import StackpilotError

log = logging.getLogger(__name__)

MOUNT_AT = "/stackpilot-data"  # where the helper container sees the volume; tar entries start with its name
ARCHIVE_ROOT = MOUNT_AT.lstrip("/")
HELPER_LABEL = "io.stackpilot.backup-helper"
CHUNK = 1024 * 1024


class CopyFailed(StackpilotError):
    status = 502


def volume_exists(engine: Engine, name: str) -> bool:
    try:
        engine.call(lambda c: c.api.inspect_volume(name), what="volume")
    except NotFound:
        return False
    return True


def volume_sizes(engine: Engine) -> dict[str, int]:
    """Each volume's size in bytes as the engine counts it (`docker system df -v`); slow on big hosts."""
    data = engine.call(lambda c: c.api.df(), what="disk usage")
    return {v["Name"]: int((v.get("UsageData") or {}).get("Size", -1)) for v in data.get("Volumes") or []}


def image_of(engine: Engine, container_id: str) -> str:
    return engine.call(lambda c: c.api.inspect_container(container_id), what="container")["Image"]


@contextmanager
def helper(engine: Engine, image: str, volume: str, read_only: bool) -> Iterator[str]:
    """A created, never started container of `image` with `volume` at MOUNT_AT; removed after."""
    name = f"stackpilot-backup-{secrets.token_hex(4)}"

    def create(client):
        config = client.api.create_host_config(
            binds={volume: {"bind": MOUNT_AT, "mode": "ro" if read_only else "rw"}}, network_mode="none"
        )
        return client.api.create_container(
            image,
            command=["stackpilot-never-started"],
            name=name,
            host_config=config,
            labels={HELPER_LABEL: "1"},
            network_disabled=True,
            entrypoint=[],
        )["Id"]

    cid = engine.call(create, what="image")
    try:
        yield cid
    finally:
        try:
            engine.call(lambda c: c.api.remove_container(cid, force=True, v=False), what="container")
        except StackpilotError as e:
            log.warning("could not remove backup helper %s: %s", name, e.message)


def _archive_blocks(client, cid: str, path: str) -> Iterator[bytes]:
    """GET /containers/<id>/archive read in CHUNK blocks from the response itself.

    The SDK's get_archive yields the engine's HTTP chunks as they come (tens of KiB each, whatever
    chunk_size says, since urllib3 streams chunked bodies chunk by chunk); reading the raw response
    with read(CHUNK) lets http.client join them into full blocks, which is what makes the backup keep
    pace with `docker cp`. The APIClient is a requests Session, so this stays on public API.
    """
    api = client.api
    url = f"{api.base_url}/v{api.api_version}/containers/{cid}/archive"
    res = api.get(url, params={"path": path}, stream=True, headers={"Accept-Encoding": "identity"}, timeout=api.timeout)
    if res.status_code != 200:
        text = res.text[:300]
        res.close()
        if res.status_code == 404:
            raise NotFound(f"The engine has no such container or path: {text}")
        raise CopyFailed(f"The engine refused the archive ({res.status_code}): {text}")

    def blocks() -> Iterator[bytes]:
        try:
            while block := res.raw.read(CHUNK):
                yield block
        finally:
            res.close()

    return blocks()


def read_volume(engine: Engine, image: str, volume: str) -> Iterator[bytes]:
    """The volume's files as an uncompressed tar (entries under ARCHIVE_ROOT/), chunk by chunk."""
    with helper(engine, image, volume, read_only=True) as cid:
        stream = engine.call(lambda c: _archive_blocks(c, cid, MOUNT_AT), what="volume")
        try:
            yield from stream
        except Exception as e:  # the transport broke mid-stream (helper removed, engine gone)
            raise CopyFailed(f"Reading the volume {volume} stopped halfway: {str(e)[:200]}") from None
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        # The engine may finish a stream whose container was removed meanwhile: such a copy is not
        # trusted (someone or something was acting on the stack during it).
        try:
            engine.call(lambda c: c.api.inspect_container(cid), what="backup helper")
        except NotFound:
            raise CopyFailed(
                f"The container reading the volume {volume} was removed during the copy; the copy is not trusted."
            ) from None


def write_volume(engine: Engine, image: str, volume: str, tar: Iterable[bytes]) -> None:
    """Extract an uncompressed tar (chunks; entries under ARCHIVE_ROOT/) into the volume; owners and
    modes kept."""
    with helper(engine, image, volume, read_only=False) as cid:
        ok = engine.call(lambda c: c.api.put_archive(cid, "/", iter(tar)), what="volume")
        if not ok:
            raise CopyFailed(f"The engine refused to write into the volume {volume}.")


def empty_volume(engine: Engine, image: str, volume: str, timeout: int = 300) -> None:
    """Remove every file of the volume with the image's own sh (a restore writes into an empty volume)."""
    script = f"rm -rf {MOUNT_AT}/* {MOUNT_AT}/.[!.]* {MOUNT_AT}/..?* && ls -A {MOUNT_AT} | wc -l"

    def run(client):
        config = client.api.create_host_config(binds={volume: {"bind": MOUNT_AT, "mode": "rw"}}, network_mode="none")
        cid = client.api.create_container(
            image,
            entrypoint=["sh", "-c", script],
            user="0",
            host_config=config,
            labels={HELPER_LABEL: "1"},
            network_disabled=True,
        )["Id"]
        try:
            client.api.start(cid)
            code = client.api.wait(cid, timeout=timeout).get("StatusCode")
            out = client.api.logs(cid, stdout=True, stderr=True).decode(errors="replace").strip()
        finally:
            client.api.remove_container(cid, force=True)
        return code, out

    try:
        code, out = engine.call(run, what="image")
    except StackpilotError as e:
        if "executable file not found" in e.message or "no such file" in e.message.lower():
            from app.engine.exec import NoShell

            raise NoShell(
                f"The image {image} has no sh to empty the volume {volume} before the restore; "
                "restore into a new volume instead."
            ) from None
        raise
    if code != 0 or out.splitlines()[-1:] != ["0"]:
        raise CopyFailed(f"Emptying the volume {volume} failed (exit {code}): {out[-300:]}")
