"""Drift: which containers run a configuration other than the one Compose would create now.

Why: after a `.env` save or restore that is not followed by a recreate, the containers keep the
old values and nothing says so. Compose labels each container with the hash of the service
configuration it was created from (``com.docker.compose.config-hash``); ``docker compose config
--hash '*'`` gives the hash of every service as the files and `.env` say today. A container whose
label matches runs the current configuration.

A mismatch is only a candidate: `config --hash` hashes a service whose ``env_file`` it has already
folded into ``environment``, while ``up`` labels the container with a hash taken before that
(seen on 7 of the 19 corpus stacks: every service with an env_file looks changed). So candidates
are confirmed by Compose's own decision, ``up --dry-run --no-deps -- <candidates>`` (read-only),
which names each container it would "Recreate". Both answers are cached: the hashes per change of
the stack's files, the dry run per change of the files or of the candidates' containers. A
stack in step costs no Compose process per poll at all.

API:
- ``config_hashes(runner) -> dict[service, hash]``; {} when Compose cannot say.
- ``outdated(runner, containers) -> set[service]``: services Compose would recreate now for
  their configuration.
- ``forget(stack=None)``: drop cached answers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from app.engine.containers import ContainerInfo
from app.errors import StackpilotError
from app.stack import Stack
from app.stack.model import fingerprint

if TYPE_CHECKING:
    from app.compose import ComposeRunner

log = logging.getLogger(__name__)

_cache: dict[tuple, tuple[tuple, dict[str, str]]] = {}
_confirmed: dict[tuple, tuple[tuple, set[str]]] = {}
RECREATE = re.compile(r"Container (\S+)\s+Recreate\s*$", re.M)
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


def config_hashes(runner: ComposeRunner) -> dict[str, str]:
    """The hash Compose would label each active service's new container with, cached until a
    compose file or the `.env` changes."""
    stack = runner.stack
    key, mark = _key(stack), fingerprint(stack)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == mark:
        return hit[1]
    try:
        done = runner.query(["config", "--hash", "*"])
        hashes = parse_hashes(done.stdout) if done.returncode == 0 else {}
        if done.returncode != 0:
            log.info("config --hash failed for %s: %s", stack.project, (done.stderr or "").strip()[-300:])
    except StackpilotError as e:
        log.info("config --hash failed for %s: %s", stack.project, e.message)
        hashes = {}
    with _lock:
        _cache[key] = (mark, hashes)
    return hashes


def outdated(runner: ComposeRunner, containers: Iterable[ContainerInfo]) -> set[str]:
    """Services whose containers Compose would recreate now because their configuration changed."""
    stack = runner.stack
    containers = list(containers)
    hashes = config_hashes(runner)
    candidates = sorted(
        {
            c.service
            for c in containers
            if c.config_hash and hashes.get(c.service) and hashes[c.service] != c.config_hash
        }
    )
    if not candidates:
        return set()
    key = _key(stack)
    mark = (fingerprint(stack), tuple(sorted((c.id, c.config_hash) for c in containers if c.service in candidates)))
    with _lock:
        hit = _confirmed.get(key)
    if hit is not None and hit[0] == mark:
        return hit[1]
    names = {c.name: c.service for c in containers}
    try:
        done = runner.query(["up", "-d", "--dry-run", "--no-build", "--pull", "never", "--no-deps", "--", *candidates])
        if done.returncode == 0:
            found = {names[n] for n in RECREATE.findall(f"{done.stdout}\n{done.stderr}") if n in names}
        else:  # Compose could not plan (e.g. an image gone): the hashes are all we have
            log.info("up --dry-run failed for %s: %s", stack.project, (done.stderr or "").strip()[-300:])
            found = set(candidates)
    except StackpilotError as e:
        log.info("up --dry-run failed for %s: %s", stack.project, e.message)
        found = set(candidates)
    with _lock:
        _confirmed[key] = (mark, found)
    return found


def forget(stack: Stack | None = None) -> None:
    with _lock:
        for cache in (_cache, _confirmed):
            for key in list(cache):
                if stack is None or key[0] == str(stack.directory):
                    cache.pop(key, None)
