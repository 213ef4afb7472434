"""A volume's files as a tar stream, and a tar stream written back into a volume.

Why a created (never started) container: the SDK's archive API reads and writes the files of a
container's mounts without running anything in it, so no helper image is pulled and the service's
own image (already on the engine) is enough. The volume is mounted read-only for reading. Nothing
is buffered: `read_volume` streams the engine's tar into the reader's buffers as it arrives,
`write_volume` hands the engine chunks it reads as it goes.

Emptying a volume before a restore is the one step that runs something: a container of the
service's own image runs `rm` through its `sh` (NoShell when the image has none).

The same goes for a bind folder of a service on a remote engine (kind="bind"): the folder is on the
engine's host, not ours, so the helper mounts it from there (a bind instead of the volume, at the
same MOUNT_AT: the archive's layout and its restore are the very same). For reading, the folder is
bound as a mount, which the engine refuses when the folder is missing (FolderMissing); for writing,
as a legacy bind, which the engine creates when missing (as a restore makes the folder locally).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import secrets
import socket
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from urllib.parse import quote
from urllib.parse import urlencode

from app.engine import NOT_DOCKER
from app.engine import Engine
from app.engine import describe_socket
from app.engine.unixhttp import UnixHTTPConnection
from app.engine.unixhttp import refusal
from app.errors import EngineUnavailable
from app.errors import NotFound
from app.errors import StackpilotError

log = logging.getLogger(__name__)

MOUNT_AT = "/stackpilot-data"  # where the helper container sees the volume; tar entries start with its name
ARCHIVE_ROOT = MOUNT_AT.lstrip("/")
HELPER_LABEL = "io.stackpilot.backup-helper"
CHUNK = 1024 * 1024


class CopyFailed(StackpilotError):
    status = 502


class FolderMissing(CopyFailed):
    """A bind folder that is not on the engine's host."""

    status = 404


def _what(kind: str, source: str) -> str:
    return f"the volume {source}" if kind == "volume" else f"the folder {source}"


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
def helper(engine: Engine, image: str, volume: str, read_only: bool, kind: str = "volume") -> Iterator[str]:
    """A created, never started container of `image` with `volume` (a volume's name, or with
    kind="bind" a folder of the engine's host) at MOUNT_AT; removed after."""
    name = f"stackpilot-backup-{secrets.token_hex(4)}"

    def create(client):
        config = client.api.create_host_config(network_mode="none", **_mount_at(kind, volume, read_only))
        return client.api.create_container(
            image,
            command=["stackpilot-never-started"],
            name=name,
            host_config=config,
            labels={HELPER_LABEL: "1"},
            network_disabled=True,
            entrypoint=[],
        )["Id"]

    try:
        cid = engine.call(create, what="image")
    except StackpilotError as e:
        if kind == "bind" and "does not exist" in e.message:
            raise FolderMissing(f"The folder {volume} does not exist on {engine.name}: nothing to back up.") from None
        raise
    try:
        yield cid
    finally:
        try:
            engine.call(lambda c: c.api.remove_container(cid, force=True, v=False), what="container")
        except StackpilotError as e:
            log.warning("could not remove backup helper %s: %s", name, e.message)


def _mount_at(kind: str, source: str, read_only: bool) -> dict:
    """The host config's part that puts the source at MOUNT_AT. A volume, or a folder to write, as a
    bind (the engine makes a missing one); a folder to read as a bind mount, which the engine refuses
    when it is missing rather than reading a new empty folder."""
    if kind == "bind" and read_only:
        from docker.types import Mount

        return {"mounts": [Mount(MOUNT_AT, source, type="bind", read_only=True)]}
    return {"binds": {source: {"bind": MOUNT_AT, "mode": "ro" if read_only else "rw"}}}


def _is_dir(res) -> bool:
    """Whether the archived path is a folder, from the engine's stat header (Go's FileMode: ModeDir)."""
    try:
        stat = json.loads(base64.b64decode(res.headers.get("X-Docker-Container-Path-Stat") or ""))
        return bool(int(stat.get("mode", 0)) & (1 << 31))
    except (ValueError, TypeError, AttributeError):
        return True


def _archive_response(client, cid: str, path: str):
    """GET /containers/<id>/archive as a streamed response (the SDK's get_archive would hand us the
    engine's HTTP chunks, tens of KiB each, as new bytes objects)."""
    api = client.api
    url = f"{api.base_url}/v{api.api_version}/containers/{cid}/archive"
    res = api.get(url, params={"path": path}, stream=True, headers={"Accept-Encoding": "identity"}, timeout=api.timeout)
    if res.status_code != 200:
        text = res.text[:300]
        res.close()
        if res.status_code == 404:
            raise NotFound(f"The engine has no such container or path: {text}")
        raise CopyFailed(f"The engine refused the archive ({res.status_code}): {text}")
    return res


class VolumeStream:
    """The volume's files as an uncompressed tar (entries under ARCHIVE_ROOT/): iterate it for chunks,
    or readinto() buffers of one's own, which is what the backup writer does.

    readinto decodes the engine's chunked HTTP body straight into the caller's buffer through
    http.client's own readinto (the response urllib3 wraps, as the SDK itself reaches it for attach):
    no new bytes object per block, so no page faults of fresh memory per block, which on a 2-core
    host cost more than the copy itself. The helper container lives from the first read to the end
    (or close)."""

    def __init__(self, engine: Engine, image: str, volume: str, kind: str = "volume") -> None:
        self.engine = engine
        self.image = image
        self.volume = volume
        self.kind = kind
        self.is_dir = True  # known once open: False for a bound file
        self._helper: ExitStack | None = None
        self._res = None
        self._readinto = None
        self._cid = ""
        self._done = False

    def open(self) -> VolumeStream:
        """Create the helper and start the archive now, so a missing folder or volume fails before
        anything is written (readinto opens on first use otherwise)."""
        if self._helper is None and not self._done:
            self._open()
        return self

    def _open(self) -> None:
        stack = ExitStack()
        try:
            self._cid = stack.enter_context(helper(self.engine, self.image, self.volume, True, self.kind))
            self._res = self.engine.call(lambda c: _archive_response(c, self._cid, MOUNT_AT), what="volume")
        except BaseException:
            stack.close()
            raise
        self._helper = stack
        self.is_dir = _is_dir(self._res)
        body = getattr(self._res.raw, "_fp", None)  # http.client.HTTPResponse, as the SDK reaches it for attach
        self._readinto = body.readinto if hasattr(body, "readinto") else self._res.raw.readinto

    def readinto(self, b) -> int:
        """Fill b; fewer bytes only at the end of the stream, 0 after it. The end checks the copy."""
        if self._done:
            return 0
        if self._helper is None:
            self._open()
        view = memoryview(b).cast("B")
        filled = 0
        try:
            while filled < len(view):
                n = self._readinto(view[filled:])
                if not n:
                    break
                filled += n
        except Exception as e:  # the transport broke mid-stream (helper removed, engine gone)
            self.close()
            raise CopyFailed(f"Reading {_what(self.kind, self.volume)} stopped halfway: {str(e)[:200]}") from None
        if filled < len(view):
            self._finish()
        return filled

    def _finish(self) -> None:
        """The engine may finish a stream whose container was removed meanwhile: such a copy is not
        trusted (someone or something was acting on the stack during it)."""
        self._done = True
        try:
            self._res.close()
            self.engine.call(lambda c: c.api.inspect_container(self._cid), what="backup helper")
        except NotFound:
            raise CopyFailed(
                f"The container reading {_what(self.kind, self.volume)} was removed during the copy; "
                "the copy is not trusted."
            ) from None
        finally:
            self.close()

    def close(self) -> None:
        self._done = True
        if self._res is not None:
            self._res.close()
        if self._helper is not None:
            helper_, self._helper = self._helper, None
            helper_.close()

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                block = bytearray(CHUNK)
                n = self.readinto(block)
                if not n:
                    return
                yield block if n == CHUNK else block[:n]  # a new buffer each time: the consumer may keep it
        finally:
            self.close()

    def __del__(self) -> None:
        if self._helper is not None:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - a leftover helper is logged by helper() itself
                pass


def read_volume(engine: Engine, image: str, volume: str, kind: str = "volume") -> VolumeStream:
    """The volume's (or with kind="bind" the engine host's folder's) files as an uncompressed tar
    (entries under ARCHIVE_ROOT/), chunk by chunk."""
    return VolumeStream(engine, image, volume, kind)


def write_volume(engine: Engine, image: str, volume: str, tar: Iterable[bytes], kind: str = "volume") -> None:
    """Extract an uncompressed tar (chunks; entries under ARCHIVE_ROOT/) into the volume (or with
    kind="bind" the engine host's folder, made when missing); owners and modes kept."""
    with helper(engine, image, volume, read_only=False, kind=kind) as cid:
        if not put_archive(engine, cid, "/", tar):
            raise CopyFailed(f"The engine refused to write into {_what(kind, volume)}.")


def put_archive(engine: Engine, cid: str, dest: str, tar: Iterable[bytes]) -> bool:
    """PUT the tar chunks into the container at dest; True when the engine answers 200 (as the SDK's
    put_archive). A local engine gets them on our own connection to its socket (put_archive_unix);
    remote engines (TCP, TLS, SSH) through the SDK."""
    path = engine.socket_path()
    if path is None:
        return engine.call(lambda c: c.api.put_archive(cid, dest, iter(tar)), what="volume")
    version = engine.call(lambda c: c.api.api_version, what="volume")
    return put_archive_unix(path, version, cid, dest, tar, engine.timeout)


def put_archive_unix(path: str, version: str, cid: str, dest: str, tar: Iterable[bytes], timeout: float) -> bool:
    """The SDK's put_archive over our own HTTP connection to a unix socket. urllib3 frames each piece
    of a chunked upload as a new bytes object (size line, payload, CRLF): a copy of everything uploaded, in
    fresh memory. Here each chunk goes out with one sendmsg of [size line, the piece, CRLF], the
    piece itself never copied. Errors read as through the SDK: 404 NotFound, another refusal the
    engine's message, a socket failure EngineUnavailable; a failing source raises its own error
    (the engine then sees a cut upload and writes nothing more)."""
    target = f"/v{version}/containers/{quote(cid, safe='')}/archive?{urlencode({'path': dest})}"
    conn = UnixHTTPConnection(path, timeout)
    pieces = iter(tar)
    try:
        try:
            conn.putrequest("PUT", target, skip_accept_encoding=True)
            conn.putheader("Content-Type", "application/x-tar")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
        except OSError as e:
            raise EngineUnavailable(describe_socket(e)) from None
        sock = conn.sock
        cut: OSError | None = None
        for piece in pieces:
            if not len(piece):
                continue
            try:
                _send_all(sock, [b"%x\r\n" % len(piece), piece, b"\r\n"])
            except OSError as e:  # the engine may have answered (and closed) already: read its answer
                cut = e
                break
        else:
            try:
                sock.sendall(b"0\r\n\r\n")
            except OSError as e:
                cut = e
        try:
            response = conn.getresponse()
            body = response.read(64 * 1024)
        except (OSError, http.client.HTTPException) as e:
            if cut is not None or isinstance(e, OSError):
                raise EngineUnavailable(describe_socket(cut or e)) from None
            raise EngineUnavailable(NOT_DOCKER) from None
    finally:
        conn.close()
        close = getattr(pieces, "close", None)
        if close:
            close()
    if response.status >= 400:
        message = refusal(response.status, response.reason, body)
        if response.status == 404:
            raise NotFound("container not found", detail=message)
        raise StackpilotError(f"the Docker engine refused: {message}")
    if cut is not None:  # a success answer to an upload we could not finish: not a success
        raise EngineUnavailable(describe_socket(cut))
    return response.status == 200


def _send_all(sock: socket.socket, parts: list) -> None:
    """sendmsg until every byte of parts is out (a send may stop short when the socket's buffer fills)."""
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts.pop(0))
        if sent:
            parts[0] = memoryview(parts[0])[sent:]


def empty_volume(engine: Engine, image: str, volume: str, timeout: int = 300, kind: str = "volume") -> None:
    """Remove every file of the volume (or with kind="bind" the engine host's folder, made when
    missing) with the image's own sh (a restore writes into an empty volume)."""
    script = f"rm -rf {MOUNT_AT}/* {MOUNT_AT}/.[!.]* {MOUNT_AT}/..?* && ls -A {MOUNT_AT} | wc -l"

    def run(client):
        config = client.api.create_host_config(network_mode="none", **_mount_at(kind, volume, False))
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
                f"The image {image} has no sh to empty {_what(kind, volume)} before the restore; "
                "restore into a new volume instead."
            ) from None
        raise
    if code != 0 or out.splitlines()[-1:] != ["0"]:
        raise CopyFailed(f"Emptying {_what(kind, volume)} failed (exit {code}): {out[-300:]}")
