"""Image digests and rollback tags (issue 14), through the engine so its own registry credentials apply.

Why the engine and not an HTTP client of our own: `images.get_registry_data` asks the engine for the
registry's current manifest digest of a tag (a HEAD/GET of the manifest, no layers pulled), with the
logins the engine already has. A registry that is down, refuses or rate-limits answers as an
APIError; that is a per-image result (``Remote.error``), never an engine failure: the engine is fine.

API:
- ``split_ref(ref) -> (repo, tag, digest)``: "a/b:1" -> ("a/b", "1", ""), "a@sha256:.." -> ("a", "", "sha256:..").
- ``local_digests(engine, ref) -> (image id | None, [repo digests of that repo])``
- ``remote_digest(engine, ref) -> Remote(digest, error, rate_limited)``
- ``keep_previous(engine, ref, service) -> str | None``: tag the image ref points to now as
  ``<repo>:stackpilot-previous-<service>`` (replacing the last one); the previous id, None if no image.
- ``restore_previous(engine, ref, service) -> str``: point ref back at that tag's image; its id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.engine import Engine
from app.errors import EngineUnavailable
from app.errors import NotFound

PREVIOUS_TAG = "stackpilot-previous-"
_TAG_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Remote:
    digest: str = ""
    error: str = ""
    rate_limited: bool = False


def split_ref(ref: str) -> tuple[str, str, str]:
    """Repository, tag and pinned digest of an image reference (tag "latest" when none is given)."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        repo, tag = name[:colon], name[colon + 1 :]
    else:
        repo, tag = name, "" if digest else "latest"
    return repo, tag, digest


def _same_repo(a: str, b: str) -> bool:
    def norm(r: str) -> str:
        r = r.removeprefix("docker.io/")
        return r.removeprefix("library/")

    return norm(a) == norm(b)


def local_digests(engine: Engine, ref: str) -> tuple[str | None, list[str]]:
    """The local image's id and the registry digests it is known under for ref's repository."""
    try:
        attrs = engine.call(lambda c: c.api.inspect_image(ref), "image")
    except NotFound:
        return None, []
    repo = split_ref(ref)[0]
    digests = [d.partition("@")[2] for d in attrs.get("RepoDigests") or () if _same_repo(d.partition("@")[0], repo)]
    return attrs.get("Id"), digests


def remote_digest(engine: Engine, ref: str) -> Remote:
    """The registry's current digest for ref's tag; errors (unreachable, denied, 429) per image."""
    client = engine.client()
    import docker.errors  # loaded with the client just opened
    import requests.exceptions

    try:
        data = client.images.get_registry_data(ref)
    except docker.errors.APIError as e:
        text = str(e.explanation or e)
        limited = (
            "toomanyrequests" in text.lower()
            or "rate limit" in text.lower()
            or (e.response is not None and e.response.status_code == 429)
        )
        return Remote(error=("rate limited: " if limited else "") + text[:300], rate_limited=limited)
    except requests.exceptions.RequestException as e:
        raise EngineUnavailable(f"{engine.name}: {e}") from None
    return Remote(digest=str(data.id or ""))


def previous_tag(ref: str, service: str) -> str:
    return f"{split_ref(ref)[0]}:{PREVIOUS_TAG}{_TAG_SAFE.sub('-', service)[:100]}"


def keep_previous(engine: Engine, ref: str, service: str) -> str | None:
    """Tag what ref points to now, so a roll back finds it after the pull moved ref."""
    try:
        image = engine.call(lambda c: c.images.get(ref), "image")
    except NotFound:
        return None
    repo, _, tag = previous_tag(ref, service).rpartition(":")
    engine.call(lambda c: image.tag(repo, tag), "image")
    return image.id


def restore_previous(engine: Engine, ref: str, service: str) -> str:
    """Point ref at the kept previous image again (NotFound when none was kept)."""
    image = engine.call(lambda c: c.images.get(previous_tag(ref, service)), "image")
    repo, tag, _ = split_ref(ref)
    engine.call(lambda c: image.tag(repo, tag), "image")
    return image.id
