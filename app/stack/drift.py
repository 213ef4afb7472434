"""Drift: which containers run a configuration other than the one Compose would create now.

Why: after a `.env` save or restore that is not followed by a recreate, the containers keep the
old values and nothing says so. Compose labels each container with the hash of the service
configuration it was created from (``com.docker.compose.config-hash``); ``docker compose config
--hash '*'`` gives the hash of every service as the files and `.env` say today. A container whose
label differs runs an older configuration. (The image side, a tag that now points to another
image, is compared in app.stack.services from the engine's image ids.)

API:
- ``config_hashes(stack) -> dict[service, hash]``: one Compose process per change of the stack's
  files (the same fingerprint as the model cache), not one per row per poll; {} when Compose
  cannot say (the model's own error is shown elsewhere).
- ``forget(stack=None)``: drop cached hashes.
"""

from __future__ import annotations

import logging
import threading

from app import compose
from app.errors import StackpilotError
from app.stack import Stack
from app.stack.model import fingerprint

log = logging.getLogger(__name__)

_cache: dict[tuple, tuple[tuple, dict[str, str]]] = {}
_lock = threading.Lock()


def _key(stack: Stack) -> tuple:
    return (str(stack.directory), stack.project, stack.files, stack.profiles)


def parse_hashes(text: str) -> dict[str, str]:
    """`config --hash` prints "<service> <hash>" per line; a service name holds no space."""
    out = {}
    for line in text.splitlines():
        name, _, digest = line.strip().rpartition(" ")
        if name and len(digest) == 64:
            out[name] = digest
    return out


def config_hashes(stack: Stack) -> dict[str, str]:
    """The hash Compose would label each active service's new container with, cached until a
    compose file or the `.env` changes."""
    key, mark = _key(stack), fingerprint(stack)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == mark:
        return hit[1]
    try:
        done = compose.query(stack, ["config", "--hash", "*"])
        hashes = parse_hashes(done.stdout) if done.returncode == 0 else {}
        if done.returncode != 0:
            log.info("config --hash failed for %s: %s", stack.project, (done.stderr or "").strip()[-300:])
    except StackpilotError as e:
        log.info("config --hash failed for %s: %s", stack.project, e.message)
        hashes = {}
    with _lock:
        _cache[key] = (mark, hashes)
    return hashes


def forget(stack: Stack | None = None) -> None:
    with _lock:
        for key in list(_cache):
            if stack is None or key[0] == str(stack.directory):
                _cache.pop(key, None)
