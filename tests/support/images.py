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


# -- issue 15: a real Postgres for the dump path ---------------------------------------------------
POSTGRES_REPO = "stackpilot-test/postgres"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

POSTGRES_DOCKERFILE = r"""ARG BASE
FROM ${BASE}
ARG MIRROR
COPY build-ca.pem /tmp/build-ca.pem
# no cluster from the package (the entrypoint makes one in $PGDATA, as the official image does)
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/stackpilot.conf \
 && echo "deb ${MIRROR} bookworm main" > /etc/apt/sources.list \
 && ca="" && if [ -s /tmp/build-ca.pem ]; then ca="-o Acquire::https::CAInfo=/tmp/build-ca.pem"; fi \
 && apt-get -o Acquire::Check-Valid-Until=false $ca update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get $ca install -y -q --no-install-recommends postgresql \
 && for f in /usr/lib/postgresql/*/bin/*; do ln -sf "$f" /usr/local/bin/; done \
 && mkdir -p /var/run/postgresql /var/lib/postgresql/data \
 && chown postgres:postgres /var/run/postgresql /var/lib/postgresql/data \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/build-ca.pem \
      /usr/share/doc /usr/share/man /usr/share/locale
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
"""

# Enough of the official image's entrypoint for the tests: POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB, *.sql and *.sh in /docker-entrypoint-initdb.d on first start, local connections
# trusted, TCP with a password (scram) when one is set, the server in the foreground as postgres.
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=""
  auth=trust
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    auth=scram-sha-256
  fi
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --auth-local=trust --auth-host="$auth" \
    ${pwfile:+--pwfile="$pwfile"} >/dev/null
  [ -z "$pwfile" ] || rm -f "$pwfile"
  echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  # the set-up server listens on a private socket only: pg_isready (a healthcheck) fails until
  # the real server starts with the database made
  export PGHOST="$(mktemp -d)"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$PGHOST" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -X -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) psql -X -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q -f "$f" ;;
      *.sh) . "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$PGHOST" 2>/dev/null || true
  unset PGHOST
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
"""


def ensure_postgres_image() -> str:
    """A Postgres image like the official one, from Debian's `postgresql` package on the python base
    (apt through host networking: containers reach the mirror only that way here). Its name holds
    `postgres`, so Stackpilot picks the dump mode for it. Tagged by what it is built from; built once
    per machine (about a minute). Raises RuntimeError (with the reason) when the base cannot be made."""
    import hashlib

    base = ensure_python_base_image()
    mirror = apt_mirror()
    digest = hashlib.sha256(f"{POSTGRES_DOCKERFILE}\0{POSTGRES_ENTRYPOINT}\0{mirror}".encode()).hexdigest()[:12]
    tag = f"{POSTGRES_REPO}:{digest}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="sp-postgres-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(POSTGRES_DOCKERFILE)
        entry = ctx / "docker-entrypoint.sh"
        entry.write_text(POSTGRES_ENTRYPOINT)
        entry.chmod(0o755)
        # apt checks an https mirror against this machine's CA bundle (a TLS-intercepting proxy)
        (ctx / "build-ca.pem").write_bytes(HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b"")
        result = subprocess.run(
            [
                "docker",
                "build",
                "--network",
                "host",
                "--build-arg",
                f"BASE={base}",
                "--build-arg",
                f"MIRROR={mirror}",
                "-t",
                tag,
                str(ctx),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
    if result.returncode != 0:
        raise RuntimeError(f"docker build (postgres) failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", POSTGRES_REPO], capture_output=True, text=True
    ).stdout.split()
    stale = [t for t in listed if t != tag]
    if stale:  # older builds of this image (an edited entrypoint) do not pile up
        subprocess.run(["docker", "rmi", *stale], capture_output=True)
    return tag


if __name__ == "__main__":
    print(ensure_busybox_image())
