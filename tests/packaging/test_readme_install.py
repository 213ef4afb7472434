"""README's "Install next to a stack", run as written.

Every block fenced as ```sh install``` in README.md runs verbatim, in one bash, in order, in a
HOME that holds a small stack shaped like local-ai-packaged (a git checkout with a Caddy that
imports caddy-addon/*.conf, a global e-mail, and a service that logs). The only things not from
the README: `docker build` (the suite's image, via STACKPILOT_IMAGE), the project name (the
session's prefix, via COMPOSE_PROJECT_NAME in the environment, which beats .env), and the port
Caddy's 443 is published on (a free one: the stack is a test fixture). Then: the setup link the
log prints, the claim through Caddy over HTTPS with a certificate chaining to Caddy's local root,
the root certificate from Stackpilot's HTTPS page, and a live log through the WebSocket.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
import requests

from app.engine import Engine
from app.engine.files import read_file
from app.stack import caddy
from tests.conftest import PREFIX
from tests.packaging.image import ROOT
from tests.packaging.image import build_caddy_image
from tests.packaging.test_caddy import _PinnedAdapter
from tests.packaging.test_caddy import _PinnedWSClient
from tests.support.live import free_port
from tests.support.live import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "manage.home.lan"
PASSWORD = "install-test-password-42"
FENCE = re.compile(r"^( *)```sh install\n(.*?)^\1```", re.M | re.S)
LINK = re.compile(r"https://[^ ]*/setup/#token=[^ \s]*")
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')

STACK_COMPOSE = """\
services:
  caddy:
    image: ${FIXTURE_CADDY_IMAGE}
    pull_policy: never
    restart: unless-stopped
    ports:
      - "127.0.0.1:${FIXTURE_HTTPS_PORT}:443"
    environment:
      - N8N_HOSTNAME=${N8N_HOSTNAME:-":8001"}
      - WEBUI_HOSTNAME=${WEBUI_HOSTNAME:-":8002"}
      - SEARXNG_HOSTNAME=${SEARXNG_HOSTNAME:-":8006"}
      - LETSENCRYPT_EMAIL=${LETSENCRYPT_EMAIL:-internal}
    volumes:
      - ./Caddyfile:/etc/caddy/Caddyfile:ro
      - ./caddy-addon:/etc/caddy/addons:ro
      - caddy-data:/data
  n8n:
    image: ${FIXTURE_BUSYBOX}
    pull_policy: never
    command: ["sh", "-c", "mkdir -p /www && echo n8n-here > /www/index.html && exec httpd -f -p 5678 -h /www"]
  flowise:
    image: ${FIXTURE_BUSYBOX}
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    volumes:
      - ~/.flowise:/root/.flowise
  talker:
    image: ${FIXTURE_BUSYBOX}
    pull_policy: never
    command: ["sh", "-c", "i=0; while true; do echo tick-$$i; i=$$((i+1)); sleep 0.2; done"]
volumes:
  caddy-data:
"""


def install_blocks() -> list[str]:
    """The README's install blocks, dedented, in order."""
    return [textwrap.dedent(body) for _, body in FENCE.findall((ROOT / "README.md").read_text())]


def test_readme_marks_its_install_blocks_and_they_hold_no_placeholders():
    blocks = install_blocks()
    assert len(blocks) >= 3
    text = "\n".join(blocks)
    assert "<" not in text and "…" not in text, "a placeholder in an install block"
    env_lines = [line for line in text.splitlines() if re.match(r"^\s*['\"]?[A-Z_]+=", line)]
    assert env_lines, "the .env block writes KEY=value lines"
    assert all(line.count("=") == 1 or "MANAGEMENT_TLS" in line for line in env_lines), env_lines
    assert "force-recreate --no-deps caddy" in text, "Caddy must be recreated after the snippet"
    readme = (ROOT / "README.md").read_text()
    assert "build-ca.pem" in readme and "<stackpilot-repo>" not in readme


def _mounts(project: str, service: str) -> tuple[str, list[str]]:
    """The service's container id and its bind sources."""
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not out:
        return "", []
    fmt = '{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}} {{end}}{{end}}'
    sources = subprocess.run(["docker", "inspect", "-f", fmt, out[0]], capture_output=True, text=True).stdout.split()
    return out[0], sources


def _sh(script: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-u", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def fixture_stack(busybox_image, real_compose):
    """~/local-ai-packaged in a throw-away HOME, a git checkout owned by uid 1000."""
    parent = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-install-"))
    parent.chmod(0o755)
    home = parent / "home"
    stack = home / "local-ai-packaged"
    (stack / "caddy-addon").mkdir(parents=True)
    home.chmod(0o755)
    caddyfile = (Path(__file__).parent / "fixtures" / "Caddyfile.localai").read_text()
    (stack / "Caddyfile").write_text(caddyfile.replace("import addons/*.conf", "import /etc/caddy/addons/*.conf"))
    (stack / "docker-compose.yml").write_text(STACK_COMPOSE)
    (stack / "caddy-addon" / ".gitkeep").write_text("")
    (stack / ".gitignore").write_text(".env\n")
    port = free_port()
    (stack / ".env").write_text(
        f"FIXTURE_CADDY_IMAGE={build_caddy_image()}\nFIXTURE_BUSYBOX={busybox_image}\n"
        f"FIXTURE_HTTPS_PORT={port}\nLETSENCRYPT_EMAIL=me@example.com"
    )  # no final newline
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "stack"]):
        subprocess.run([*git, *args], cwd=stack, check=True, capture_output=True)
    # The docker CLI of this HOME finds Compose where the machine's does.
    plugins = home / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(real_compose)
    subprocess.run(["chown", "-R", "1000:1000", str(stack)], check=True)
    project = f"{PREFIX}-localai{secrets.token_hex(2)}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STACKPILOT_", "MANAGEMENT_", "COMPOSE_", "STACK_"))
    }
    env.update(
        HOME=str(home),
        COMPOSE_PROJECT_NAME=project,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
    )
    (home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
    # The stack runs before Stackpilot is installed, as it would.
    subprocess.run(
        [real_compose, "up", "-d", "--pull", "never"], cwd=stack, env=env, check=True, capture_output=True, timeout=120
    )
    yield stack, env, port, project
    subprocess.run(
        [real_compose, "-p", project, "--project-directory", str(stack), "down", "-v", "-t", "2", "--remove-orphans"],
        capture_output=True,
        env=env,
        cwd=stack,
        timeout=120,
    )
    shutil.rmtree(parent, ignore_errors=True)


def test_readme_install_runs_as_written_and_serves_https_through_caddy(fixture_stack, stackpilot_image):
    stack, env, port, project = fixture_stack
    env = {**env, "STACKPILOT_IMAGE": stackpilot_image}
    blocks = install_blocks()
    *setup, show_link = blocks
    done = _sh("\n".join(setup), cwd=ROOT, env=env)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"

    # The tracked compose file is untouched and the new files stay out of `git status`.
    status = _sh("git status --porcelain", cwd=stack, env=env)
    assert status.stdout == "", status.stdout
    dotenv = (stack / ".env").read_text()
    assert "LETSENCRYPT_EMAIL=me@example.com\n" in dotenv, "the appended lines must not join the last one"
    assert f"STACK_DIR={stack}\n" in dotenv and "$(" not in dotenv

    # The setup link, exactly as the README's block prints it.
    printed: list[str] = []

    def link() -> bool:
        out = _sh(show_link, cwd=stack, env=env, timeout=30)
        printed[:] = LINK.findall(out.stdout)
        return bool(printed)

    wait_for(link, timeout=60, interval=0.5, message="the setup link in Stackpilot's log")
    assert printed[-1].startswith(f"https://{NAME}/setup/#token="), printed
    token = printed[-1].split("#token=", 1)[1]

    # Caddy's local root, read through the Docker API like the HTTPS page does.
    caddy_id = subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            "label=com.docker.compose.service=caddy",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    engine = Engine()
    root_pem: bytes = b""

    def root_ready() -> bool:
        nonlocal root_pem
        try:
            root_pem = read_file(engine, caddy_id, caddy.ROOT_CERT_PATHS[0])
        except Exception:
            return False
        return root_pem.startswith(b"-----BEGIN CERTIFICATE-----")

    wait_for(root_ready, timeout=30, interval=0.3, message="Caddy's local root certificate")
    cafile = stack.parent / "caddy-root.crt"
    cafile.write_bytes(root_pem)

    # The name answers over HTTPS with a certificate chaining to that root; the check says why others fail.
    wait_for(
        lambda: caddy.check_https(NAME, "127.0.0.1", port, str(cafile)).ok,
        timeout=30,
        interval=0.3,
        message="HTTPS for the LAN name",
    )
    assert caddy.check_https("other.home.lan", "127.0.0.1", port, str(cafile)).reason == "tls"
    assert caddy.check_https(NAME, "127.0.0.1", port, None).reason == "chain"
    assert caddy.check_https(NAME, "127.0.0.1", free_port(), str(cafile)).reason == "refused"

    # Claim the admin through Caddy, as the link says (the name resolved to Caddy's published port).
    origin = f"https://{NAME}:{port}"
    s = requests.Session()
    s.mount("https://", _PinnedAdapter(NAME, "127.0.0.1"))
    s.trust_env = False
    s.verify = str(cafile)
    s.headers["Host"] = f"{NAME}:{port}"
    url = f"https://127.0.0.1:{port}"

    def claim_page():
        r = s.get(url + "/setup/", timeout=10)
        return r if r.status_code == 200 and "Claim the admin account" in r.text else None

    page = wait_for(claim_page, timeout=60, interval=0.5, message="the claim page through Caddy")
    r = s.post(
        url + "/setup/claim",
        data={"csrf_token": CSRF.search(page.text).group(1), "token": token, "username": "owner", "password": PASSWORD},
        headers={"Origin": origin},
        allow_redirects=False,
        timeout=60,
    )
    assert r.status_code in (302, 303), (r.status_code, r.text[:500])
    assert "Secure" in r.headers["Set-Cookie"], "Stackpilot must see https from Caddy (trusted proxy)"

    # The root certificate from Stackpilot's own HTTPS page (Stackpilot found Caddy as its proxy).
    cert = s.get(url + "/https/root.crt", timeout=20)
    assert cert.status_code == 200, cert.text[:500]
    assert cert.content.strip() == root_pem.strip()

    # A live log through Caddy over wss.
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    ctx = ssl.create_default_context(cafile=str(cafile))
    ws = _PinnedWSClient(
        ("127.0.0.1", port), f"{NAME}:{port}", "/logs/-/ws?s=talker", {"Origin": origin, "Cookie": cookie}, ctx
    )
    try:
        seen: list[str] = []

        def ticks() -> bool:
            frame = ws.receive(timeout=5)
            if frame:
                seen.append(frame)
            return sum("tick-" in f for f in seen) >= 3

        wait_for(ticks, timeout=30, interval=0, message="log lines through Caddy")
    finally:
        ws.close()

    # Compose inside Stackpilot's container runs with the host user's HOME: a recreate from the UI
    # keeps `~/.flowise` at the host's ~/.flowise (it used to become /data/.flowise).
    before = _mounts(project, "flowise")
    csrf = CSRF.search(s.get(url + "/services", timeout=30).text).group(1)
    recreate = s.post(
        url + "/services/flowise/recreate",
        headers={"Origin": origin, "X-CSRF-Token": csrf, "HX-Request": "true"},
        timeout=30,
    )
    assert recreate.status_code == 200, recreate.text[:500]
    wait_for(
        lambda: _mounts(project, "flowise")[0] != before[0],
        timeout=30,
        interval=0.3,
        message="flowise recreated by Stackpilot",
    )
    assert _mounts(project, "flowise")[1] == [str(Path(env["HOME"]) / ".flowise")]

    # The stack's own service under a LAN name: the addon the wizard writes, Caddy restarted.
    written = caddy.write_lan_sites(stack, {"N8N_HOSTNAME": "n8n.home.lan"})
    assert [s.upstream for s in written.sites] == ["n8n:5678"]
    assert caddy.check_https("n8n.home.lan", "127.0.0.1", port, str(cafile)).reason == "tls"
    restarted = _sh("docker compose restart caddy", cwd=stack, env=env)
    assert restarted.returncode == 0, restarted.stderr
    wait_for(
        lambda: caddy.check_https("n8n.home.lan", "127.0.0.1", port, str(cafile)).ok,
        timeout=30,
        interval=0.3,
        message="HTTPS for the service's LAN name",
    )
    n8n = requests.Session()
    n8n.mount("https://", _PinnedAdapter("n8n.home.lan", "127.0.0.1"))
    n8n.trust_env = False
    page = n8n.get(url + "/", headers={"Host": "n8n.home.lan"}, verify=str(cafile), timeout=10)
    assert page.status_code == 200 and page.text.strip() == "n8n-here"
