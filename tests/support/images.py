"""Local images for the tests, made without any registry and built once per machine.

busybox: Debian's busybox-static binary with its applet links, imported as a scratch image.
python base: `debootstrap --variant=minbase` with python3, for building our own Dockerfile.
postgres, mariadb: Debian's server packages on the python base (apt over host networking), with an
entrypoint like the official image's, for the backups' dump paths.
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

# The head and the apt lines every apt-built test image shares: Debian's packages from this machine's
# mirror, over host networking, with the machine's CA bundle when it has one.
APT_HEAD = r"""ARG BASE
FROM ${BASE}
ARG MIRROR
COPY build-ca.pem /tmp/build-ca.pem
"""
APT_INSTALL = r"""echo "deb ${MIRROR} bookworm main" > /etc/apt/sources.list \
 && ca="" && if [ -s /tmp/build-ca.pem ]; then ca="-o Acquire::https::CAInfo=/tmp/build-ca.pem"; fi \
 && apt-get -o Acquire::Check-Valid-Until=false $ca update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get $ca install -y -q --no-install-recommends"""
APT_CLEAN = r"""rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/build-ca.pem \
      /usr/share/doc /usr/share/man /usr/share/locale"""

POSTGRES_DOCKERFILE = (
    APT_HEAD
    + r"""# no cluster from the package (the entrypoint makes one in $PGDATA, as the official image does)
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/stackpilot.conf \
 && """
    + APT_INSTALL
    + r""" postgresql \
 && for f in /usr/lib/postgresql/*/bin/*; do ln -sf "$f" /usr/local/bin/; done \
 && mkdir -p /var/run/postgresql /var/lib/postgresql/data \
 && chown postgres:postgres /var/run/postgresql /var/lib/postgresql/data \
 && """
    + APT_CLEAN
    + r"""
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
"""
)

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


def _build_apt_image(repo: str, dockerfile: str, files: dict[str, str], what: str) -> str:
    """Build `dockerfile` (APT_HEAD's build args) with `files` (made executable) beside it, FROM the
    python base: tagged `repo:<hash of what it is built from>`, so built once per machine, and the
    older tags of `repo` removed. Raises RuntimeError (with the reason) when a step fails."""
    import hashlib

    base = ensure_python_base_image()
    mirror = apt_mirror()
    digest = hashlib.sha256("\0".join([dockerfile, *files.values(), mirror]).encode()).hexdigest()[:12]
    tag = f"{repo}:{digest}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix=f"sp-{what}-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(dockerfile)
        for name, text in files.items():
            (ctx / name).write_text(text)
            (ctx / name).chmod(0o755)
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
        raise RuntimeError(f"docker build ({what}) failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repo], capture_output=True, text=True
    ).stdout.split()
    stale = [t for t in listed if t != tag]
    if stale:  # older builds of this image (an edited entrypoint) do not pile up
        subprocess.run(["docker", "rmi", *stale], capture_output=True)
    return tag


def ensure_postgres_image() -> str:
    """A Postgres image like the official one, from Debian's `postgresql` package on the python base
    (apt through host networking: containers reach the mirror only that way here). Its name holds
    `postgres`, so Stackpilot picks the dump mode for it. Tagged by what it is built from; built once
    per machine (about a minute). Raises RuntimeError (with the reason) when the base cannot be made."""
    return _build_apt_image(
        POSTGRES_REPO, POSTGRES_DOCKERFILE, {"docker-entrypoint.sh": POSTGRES_ENTRYPOINT}, "postgres"
    )


# -- issue 15: a real MariaDB for the MySQL/MariaDB dump path --------------------------------------
MARIADB_REPO = "stackpilot-test/mariadb"

MARIADB_DOCKERFILE = (
    APT_HEAD
    + r"""# no server started by the package (policy-rc.d) and no data dir kept from it: the entrypoint makes
# one in /var/lib/mysql on first start, as the official image does
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && """
    + APT_INSTALL
    + r""" mariadb-server \
 && rm -f /usr/sbin/policy-rc.d \
 && rm -rf /var/lib/mysql && mkdir -p /var/lib/mysql /run/mysqld \
 && chown mysql:mysql /var/lib/mysql /run/mysqld \
 && printf '[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\n' > /etc/mysql/mariadb.conf.d/99-stackpilot.cnf \
 && """
    + APT_CLEAN
    + r"""
COPY docker-entrypoint.sh healthcheck.sh /usr/local/bin/
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
"""
)

# Enough of the official image's entrypoint for the tests: MARIADB_ROOT_PASSWORD (or the MYSQL_ name)
# or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD for root@localhost and root@%, MARIADB_DATABASE,
# MARIADB_USER / MARIADB_PASSWORD (all also as MYSQL_*), *.sql and *.sh in /docker-entrypoint-initdb.d
# on first start; the server in the foreground as mysql. The set-up server listens on a private
# socket only, so a healthcheck (healthcheck.sh, mariadb-admin ping) passes only once it is done.
MARIADB_ENTRYPOINT = r"""#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- mariadbd "$@"; fi
case "$1" in mariadbd | mysqld) ;; *) exec "$@" ;; esac
if [ "$(id -u)" = 0 ]; then
  mkdir -p /var/lib/mysql /run/mysqld
  chown -R mysql:mysql /var/lib/mysql /run/mysqld
  exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
fi
root_pw="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
empty_ok="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
user="${MARIADB_USER:-${MYSQL_USER:-}}"
user_pw="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
esc() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
if [ ! -d /var/lib/mysql/mysql ]; then
  if [ -z "$root_pw" ] && [ -z "$empty_ok" ]; then
    echo "error: database is uninitialized and MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD) is not set" >&2
    exit 1
  fi
  mariadb-install-db --datadir=/var/lib/mysql --auth-root-authentication-method=normal --skip-test-db \
    --skip-name-resolve >/dev/null
  sockdir="$(mktemp -d)"
  "$@" --skip-networking --socket="$sockdir/init.sock" &
  pid=$!
  i=0
  until mariadb-admin --socket="$sockdir/init.sock" -uroot ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then echo "error: the set-up server did not start" >&2; exit 1; fi
    sleep 0.1
  done
  sql() { mariadb --socket="$sockdir/init.sock" -uroot "$@"; }
  {
    echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
    echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';"
    echo "FLUSH PRIVILEGES;"
    # healthcheck.sh's own user (no rights), so its pings do not log a refused root every second
    echo "CREATE USER 'healthcheck'@'localhost';"
    if [ -n "$database" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"; fi
    if [ -n "$user" ]; then
      echo "CREATE USER '$(esc "$user")'@'%' IDENTIFIED BY '$(esc "$user_pw")';"
      if [ -n "$database" ]; then echo "GRANT ALL ON \`$database\`.* TO '$(esc "$user")'@'%';"; fi
    fi
  } | sql
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) sql ${database:+"$database"} < "$f" ;;
      *.sh) . "$f" ;;
    esac
  done
  {
    echo "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$(esc "$root_pw")');"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(esc "$root_pw")';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
  } | sql
  kill "$pid"
  wait "$pid" || true
  rm -rf "$sockdir"
  echo "MariaDB init process done. Ready for start up."
fi
exec "$@"
"""

# The official image's healthcheck.sh, as far as its usual `--connect --innodb_initialized` go here:
# the server answers on its socket (not the set-up server's).
MARIADB_HEALTHCHECK = r"""#!/bin/sh
exec mariadb-admin -uhealthcheck ping --silent >/dev/null
"""


def ensure_mariadb_image() -> str:
    """A MariaDB image like the official one, from Debian's `mariadb-server` package (10.11) on the
    python base, built as ensure_postgres_image() builds Postgres. Its name holds `mariadb`, so
    Stackpilot picks the dump mode for it. Built once per machine; RuntimeError when it cannot be."""
    return _build_apt_image(
        MARIADB_REPO,
        MARIADB_DOCKERFILE,
        {"docker-entrypoint.sh": MARIADB_ENTRYPOINT, "healthcheck.sh": MARIADB_HEALTHCHECK},
        "mariadb",
    )


if __name__ == "__main__":
    print(ensure_busybox_image())
