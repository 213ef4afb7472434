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
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "prepare: installing ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${need_apt[@]}" ca-certificates >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# The Compose v2 CLI plugin path, so `docker compose` works as well as `docker-compose`.
compose_bin=$(command -v docker-compose)
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$compose_bin" "$HOME/.docker/cli-plugins/docker-compose"

python3 -m tests.support.engine start
