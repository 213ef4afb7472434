"""Fixture compose stacks modelled on real self-hosted stacks, for the services tests.

"{image}" is the local busybox image (make_stack fills it in); every service uses
pull_policy: never and short stop grace periods so tests stay quick.
"""

from __future__ import annotations

# web + db + worker with a healthcheck-gated depends_on, a one-shot init that exits 0,
# a crash-looping service, a service nobody starts, and a named volume.
WEB_DB_WORKER = """
services:
  db:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 1s
      retries: 1
    stop_grace_period: 1s
    volumes: ["dbdata:/data"]
  init:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo migrated"]
  web:
    image: {image}
    pull_policy: never
    command: ["httpd", "-f", "-p", "8080"]
    stop_grace_period: 1s
    ports: ["127.0.0.1:{web_port}:8080"]
    depends_on:
      db: {{condition: service_healthy}}
      init: {{condition: service_completed_successfully}}
    labels:
      stackpilot.group: frontend
    deploy:
      resources:
        limits: {{memory: 64M}}
  worker:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on: [db]
  crashy:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo boom; exit 3"]
    restart: always
  idle:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
volumes:
  dbdata: {{}}
"""

# The main file includes a second file; an override file adds a label and an environment value.
INCLUDE_MAIN = """
include:
  - extra/compose.extra.yml
services:
  app:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""
INCLUDE_EXTRA = """
services:
  sidecar:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""
OVERRIDE = """
services:
  app:
    labels:
      stackpilot.group: apps
    environment:
      FROM_OVERRIDE: "yes"
"""

# Three mutually exclusive profiles sharing one container_name (like ollama-cpu/-gpu/-gpu-amd).
PROFILES = """
services:
  ui:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  ollama-cpu:
    image: {image}
    pull_policy: never
    container_name: {shared}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    profiles: ["cpu"]
  ollama-gpu:
    image: {image}
    pull_policy: never
    container_name: {shared}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    profiles: ["gpu-nvidia"]
  ollama-gpu-amd:
    image: {image}
    pull_policy: never
    container_name: {shared}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    profiles: ["gpu-amd"]
"""


def fill(text: str, **values: str) -> str:
    """Fill {name} placeholders but keep {image} for make_stack."""
    return text.format(image="{image}", **values)


# A database whose healthcheck fails with a message; `api` waits for it to be healthy, `cache`
# only for it to have started (and has a passing healthcheck of its own). `GREETING` comes from
# .env, so changing .env changes what Compose would create (drift); cache.env is an env_file
# (Compose's `config --hash` disagrees with its own label for those: no false drift allowed).
HEALTH = """
services:
  db:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready || {{ echo 'FATAL: database \\"app\\" is starting up'; exit 3; }}"]
      interval: 1s
      timeout: 2s
      retries: 1
    stop_grace_period: 1s
  api:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      db: {{condition: service_healthy}}
  cache:
    image: {image}
    pull_policy: never
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    environment:
      GREETING: ${{GREETING:-hello}}
    env_file: [cache.env]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 1
    depends_on:
      db: {{condition: service_started}}
"""
