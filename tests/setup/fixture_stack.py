# ruff: noqa: E501 - compose files are clearer on one line each
"""A stack laid out like local-ai-packaged, with busybox standing in for every image.

- docker-compose.yml `include:`s ./supabase/docker/docker-compose.yml, which is NOT in the folder:
  the recipe fetches it (sparse, docker/ only) from a git remote, here a local repository;
- Supabase's compose reads its own .env (supabase/docker/.env, the recipe's copy of .env): the db
  healthcheck fails without POSTGRES_PASSWORD, and vector -> db -> analytics -> studio wait on health;
- overrides private (127.0.0.1 ports) and public; profiles cpu / gpu-nvidia / gpu-amd choose one of
  three ollama services sharing one container_name, plus a one-shot model pull;
- n8n waits for the one-shot n8n-import, which checks that N8N_ENCRYPTION_KEY is hex of 32 bytes;
- searxng needs searxng/settings.yml made from settings-base.yml without "ultrasecretkey".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

HEALTH = "interval: 1s\n      timeout: 3s\n      retries: 20\n      start_period: 0s"

SUPABASE = """\
name: supabase
services:
  vector:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo vector up; touch /tmp/ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      {health}
  db:
    image: {image}
    pull_policy: never
    environment:
      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD}}
    command: ["sh", "-c", "echo db listening; exec sleep 3600"]
    healthcheck:
      test: ["CMD-SHELL", "test -n \\"$$POSTGRES_PASSWORD\\" && test \\"$$POSTGRES_PASSWORD\\" != your-super-secret-and-long-postgres-password"]
      {health}
    depends_on:
      vector:
        condition: service_healthy
  analytics:
    image: {image}
    pull_policy: never
    environment:
      LOGFLARE_PUBLIC_ACCESS_TOKEN: ${{LOGFLARE_PUBLIC_ACCESS_TOKEN}}
      LOGFLARE_PRIVATE_ACCESS_TOKEN: ${{LOGFLARE_PRIVATE_ACCESS_TOKEN}}
    command: ["sh", "-c", "echo analytics up; exec sleep 3600"]
    healthcheck:
      test: ["CMD-SHELL", "test \\"$$LOGFLARE_PUBLIC_ACCESS_TOKEN\\" != \\"$$LOGFLARE_PRIVATE_ACCESS_TOKEN\\""]
      {health}
    depends_on:
      db:
        condition: service_healthy
  studio:
    image: {image}
    pull_policy: never
    environment:
      ANON_KEY: ${{ANON_KEY}}
      DASHBOARD_USERNAME: ${{DASHBOARD_USERNAME}}
    command: ["sh", "-c", "echo studio up; exec sleep 3600"]
    depends_on:
      analytics:
        condition: service_healthy
"""

MAIN = """\
include:
  - ./supabase/docker/docker-compose.yml

x-ollama: &service-ollama
  image: {image}
  pull_policy: never
  container_name: {project}-ollama
  command: ["sh", "-c", "echo ollama serving; exec sleep 3600"]

services:
  flowise:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "mkdir -p /www && echo flowise > /www/index.html && exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      {health}
  n8n-import:
    image: {image}
    pull_policy: never
    environment:
      N8N_ENCRYPTION_KEY: ${{N8N_ENCRYPTION_KEY}}
    command: ["sh", "-c", "echo \\"$$N8N_ENCRYPTION_KEY\\" | grep -Eq '^[0-9a-f]{{64}}$$' && echo imported"]
  n8n:
    image: {image}
    pull_policy: never
    environment:
      N8N_ENCRYPTION_KEY: ${{N8N_ENCRYPTION_KEY}}
      N8N_HOSTNAME: ${{N8N_HOSTNAME:-}}
    command: ["sh", "-c", "echo n8n ready; exec sleep 3600"]
    depends_on:
      n8n-import:
        condition: service_completed_successfully
      db:
        condition: service_healthy
  ollama-cpu:
    profiles: ["cpu"]
    <<: *service-ollama
  ollama-gpu:
    profiles: ["gpu-nvidia"]
    <<: *service-ollama
  ollama-gpu-amd:
    profiles: ["gpu-amd"]
    <<: *service-ollama
    devices:
      - "/dev/kfd"
      - "/dev/dri"
  ollama-pull-llama-cpu:
    profiles: ["cpu"]
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo pulled qwen2.5:7b"]
    depends_on:
      - ollama-cpu
  searxng:
    image: {image}
    pull_policy: never
    volumes:
      - ./searxng:/etc/searxng:ro
    command: ["sh", "-c", "echo searxng up; exec sleep 3600"]
    healthcheck:
      test: ["CMD-SHELL", "grep -q secret_key /etc/searxng/settings.yml && ! grep -q ultrasecretkey /etc/searxng/settings.yml"]
      {health}
"""

PRIVATE = """\
services:
  flowise:
    ports:
      - 127.0.0.1:{port}:80
"""

PUBLIC = """\
services:
  flowise:
    ports:
      - {port}:80
"""

ENV_EXAMPLE = """\
############
# [required]
# n8n credentials - you set this to whatever you want, just make it a long and secure string for both!
############

N8N_ENCRYPTION_KEY=super-secret-key
N8N_USER_MANAGEMENT_JWT_SECRET=even-more-secret

############
# [required]
# Supabase Secrets
############

POSTGRES_PASSWORD=your-super-secret-and-long-postgres-password
JWT_SECRET=your-super-secret-jwt-token-with-at-least-32-characters-long
ANON_KEY=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiIsImlzcyI6InN1cGFiYXNlLWRlbW8ifQ.dc_X5iR_VP_qT0zsiyj_I_OZ2T9FtRU2BBNWN8Bu4GE
SERVICE_ROLE_KEY=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiaXNzIjoic3VwYWJhc2UtZGVtbyJ9.DaYlNEoUrrEn2Ig7tqibS-PHK5vgusbcbo7X36XVt4Q
DASHBOARD_USERNAME=supabase
DASHBOARD_PASSWORD=this_password_is_insecure_and_should_be_updated
SECRET_KEY_BASE=UpNVntn3cDxHJpq99YMc1T1AQgQpc8kfYTuRgBiYa15BLrx8etQoXz3gZv1/u2oq
VAULT_ENC_KEY=your-encryption-key-32-chars-min
LOGFLARE_PUBLIC_ACCESS_TOKEN=your-super-secret-and-long-logflare-key-public
LOGFLARE_PRIVATE_ACCESS_TOKEN=your-super-secret-and-long-logflare-key-private

############
# Neo4j, Langfuse
############

NEO4J_AUTH=neo4j/your_password
CLICKHOUSE_PASSWORD=super-secret-key-1
MINIO_ROOT_PASSWORD=super-secret-key-2
LANGFUSE_SALT=super-secret-key-3
NEXTAUTH_SECRET=super-secret-key-4
ENCRYPTION_KEY=generate-with-openssl # generate via `openssl rand -hex 32`

############
# Caddy Config
############

# N8N_HOSTNAME=n8n.yourdomain.com
# WEBUI_HOSTNAME=openwebui.yourdomain.com
# LETSENCRYPT_EMAIL=internal
"""

SETTINGS_BASE = """\
use_default_settings: true
server:
  secret_key: "ultrasecretkey"  # change this!
  limiter: false
"""

BROKEN = """\
  clickhouse:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo clickhouse starting; echo 'FATAL: cannot open /var/lib/clickhouse: permission denied'; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 0s
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "init.defaultBranch=master",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def make_supabase_remote(root: Path, image: str) -> str:
    """A git repository shaped like supabase's: docker/ (wanted) beside other folders (not wanted)."""
    repo = root / "supabase-remote"
    (repo / "docker").mkdir(parents=True)
    (repo / "apps" / "www").mkdir(parents=True)
    (repo / "docker" / "docker-compose.yml").write_text(SUPABASE.format(image=image, health=HEALTH))
    (repo / "docker" / ".gitignore").write_text(".env\n")
    (repo / "apps" / "www" / "README.md").write_text("not needed by the stack\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "supabase docker folder")
    return f"file://{repo}"


def files(project: str, port: int) -> dict[str, str]:
    """The stack folder's files ({image} is filled in by make_stack)."""
    return {
        "docker-compose.yml": MAIN.replace("{project}", project)
        .replace("{health}", HEALTH)
        .replace("{{", "{")
        .replace("}}", "}"),
        "docker-compose.override.private.yml": PRIVATE.format(port=port),
        "docker-compose.override.public.yml": PUBLIC.format(port=port),
        ".env.example": ENV_EXAMPLE,
        "searxng/settings-base.yml": SETTINGS_BASE,
    }
