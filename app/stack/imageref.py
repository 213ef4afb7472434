"""An image reference split the way the table shows it: `name:tag` in the cell, the registry
path and digest in its details."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageRef:
    full: str
    registry: str  # "" for Docker Hub
    path: str  # "seeds-magi" in "ghcr.io/seeds-magi/magi-backend"
    name: str  # "magi-backend"
    tag: str  # "latest" when none is given (and no digest)
    digest: str  # "sha256:…" or ""

    @property
    def short(self) -> str:
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @property
    def has_details(self) -> bool:
        return bool(self.registry or self.path or self.digest)


def parse(ref: str) -> ImageRef:
    """`ghcr.io/org/app:1.2@sha256:…` -> registry ghcr.io, path org, name app, tag 1.2, digest."""
    rest, _, digest = ref.partition("@")
    parts = rest.split("/")
    registry = ""
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
    last = parts.pop() if parts else ""
    name, colon, tag = last.partition(":")
    path = "/".join(parts)
    if path == "library" and not registry:
        path = ""
    return ImageRef(ref, registry, path, name, tag if colon else ("" if digest else "latest"), digest)
