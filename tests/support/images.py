"""Local images for the tests, made without any registry and built once per machine.

busybox: Debian's busybox-static binary with its applet links, imported as a scratch image.
python base: `debootstrap --variant=minbase` with python3, for building our own Dockerfile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BUSYBOX_IMAGE = "stackpilot-test/busybox:1"
PYTHON_BASE_IMAGE = "stackpilot-test/python-base:bookworm"


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def _import_dir(root: Path, name: str, changes: list[str]) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    args = ["docker", "import"]
    for change in changes:
        args += ["--change", change]
    subprocess.run([*args, "-", name], stdin=tar.stdout, check=True, capture_output=True)
    if tar.wait() != 0:
        raise RuntimeError(f"tar of {root} failed")


def ensure_busybox_image(name: str = BUSYBOX_IMAGE) -> str:
    """A ~2 MB image whose /bin holds every busybox applet (sh, sleep, nc, httpd, ...)."""
    if image_exists(name):
        return name
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory(prefix="sp-busybox-") as tmp:
        root = Path(tmp)
        for d in ("bin", "tmp", "etc", "proc", "sys", "dev", "var/www"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            link = root / "bin" / applet
            if not link.exists():
                os.symlink("busybox", link)
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        os.chmod(root / "tmp", 0o1777)
        _import_dir(root, name, ["ENV PATH=/bin", 'CMD ["sh"]'])
    return name


def apt_mirror() -> str:
    """The Debian mirror this machine's apt already uses (we name no host of our own)."""
    for path in Path("/etc/apt").glob("sources.list*"):
        files = sorted(path.glob("*.sources")) if path.is_dir() else [path]
        for f in files:
            for line in f.read_text().splitlines():
                line = line.strip()
                if line.startswith("URIs:") and "security" not in line:
                    return line.split()[1]
                if line.startswith("deb ") and "security" not in line:
                    return [w for w in line.split() if "://" in w][0]
    raise RuntimeError("no Debian mirror found in /etc/apt")


def ensure_python_base_image(name: str = PYTHON_BASE_IMAGE) -> str:
    """A Debian bookworm minbase with python3 and pip, standing in for python:3.11-slim (~40 s once)."""
    if image_exists(name):
        return name
    with tempfile.TemporaryDirectory(prefix="sp-pybase-") as tmp:
        root = Path(tmp) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(root),
                apt_mirror(),
            ],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        shutil.rmtree(root / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        _import_dir(
            root,
            name,
            [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                'CMD ["python3"]',
            ],
        )
    return name


if __name__ == "__main__":
    print(ensure_busybox_image())
