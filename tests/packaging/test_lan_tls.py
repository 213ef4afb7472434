"""LAN names get Caddy's own CA, public names keep ACME: checked with `caddy adapt` (Debian's
caddy), on Stackpilot's snippet and on the addon written for a recipe stack's Caddyfile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.errors import InvalidInput
from app.stack import caddy
from tests.packaging.image import ROOT

CADDY = shutil.which("caddy") or "/usr/bin/caddy"
FIXTURES = Path(__file__).parent / "fixtures"


def adapt(config: Path, cwd: Path | None = None, **env: str) -> dict:
    out = subprocess.run(
        [CADDY, "adapt", "--config", str(config), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent", **env},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def issuers(config: dict) -> dict[str, list[str]]:
    """{subject: [issuer modules]} from the adapted TLS automation policies ("*": the catch-all)."""
    out: dict[str, list[str]] = {}
    for policy in config.get("apps", {}).get("tls", {}).get("automation", {}).get("policies", []):
        modules = [i["module"] for i in policy.get("issuers", [])] or ["acme (default)"]
        for subject in policy.get("subjects", ["*"]):
            out[subject] = modules
    return out


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("manage.home.lan", True),
        ("n8n.local", True),
        ("box", True),
        ("192.168.1.5", True),
        ("nas.home.arpa", True),
        ("manage.example.com", False),
        ("n8n.mydomain.org", False),
        ("8.8.8.8", False),
        ("", False),
    ],
)
def test_private_names_are_told_from_public_ones(host, private):
    assert caddy.is_private_name(host) is private
    assert caddy.tls_directive(host) == ("tls internal" if private else "")


def test_stackpilot_snippet_gives_a_lan_name_the_internal_issuer(tmp_path):
    shutil.copy(ROOT / "docker" / "caddy-stackpilot.conf", tmp_path / "Caddyfile")
    lan = adapt(
        tmp_path / "Caddyfile",
        MANAGEMENT_HOSTNAME="manage.home.lan",
        MANAGEMENT_TLS=caddy.tls_directive("manage.home.lan"),
    )
    assert issuers(lan) == {"manage.home.lan": ["internal"]}
    public = adapt(
        tmp_path / "Caddyfile",
        MANAGEMENT_HOSTNAME="manage.example.com",
        MANAGEMENT_TLS=caddy.tls_directive("manage.example.com"),
    )
    # No policy for the public name: Caddy's default issuers (Let's Encrypt, ZeroSSL) manage it.
    assert "internal" not in json.dumps(public)
    assert '"host":["manage.example.com"]' in json.dumps(public, separators=(",", ":"))


def recipe_stack(tmp_path: Path) -> Path:
    (tmp_path / "addons").mkdir()
    shutil.copy(FIXTURES / "Caddyfile.localai", tmp_path / "Caddyfile")
    shutil.copy(ROOT / "docker" / "caddy-stackpilot.conf", tmp_path / "addons" / "stackpilot.conf")
    return tmp_path


def test_recipe_stack_lan_names_get_tls_internal_and_public_ones_keep_acme(tmp_path):
    stack = recipe_stack(tmp_path)
    written = caddy.write_lan_sites(
        stack,
        {"N8N_HOSTNAME": "n8n.home.lan", "SEARXNG_HOSTNAME": "search.home.lan", "OLLAMA_HOSTNAME": "ollama.home.lan"},
        addon_dir="addons",
    )
    assert [(s.var, s.upstream) for s in written.sites] == [
        ("N8N_HOSTNAME", "n8n:5678"),
        ("SEARXNG_HOSTNAME", "searxng:8080"),
    ]
    assert written.skipped and written.skipped[0][0] == "OLLAMA_HOSTNAME"
    assert written.path == stack / "addons" / caddy.LAN_FILE
    # The stack's own variables keep their port defaults; one public name stays on Let's Encrypt.
    config = adapt(
        stack / "Caddyfile",
        cwd=stack,
        LETSENCRYPT_EMAIL="me@example.com",
        N8N_HOSTNAME=":8001",
        SEARXNG_HOSTNAME=":8006",
        WEBUI_HOSTNAME="chat.example.com",
        MANAGEMENT_HOSTNAME="manage.home.lan",
        MANAGEMENT_TLS="tls internal",
    )
    got = issuers(config)
    assert got["n8n.home.lan"] == ["internal"]
    assert got["search.home.lan"] == ["internal"]
    assert got["manage.home.lan"] == ["internal"]
    assert got.get("chat.example.com", got.get("*")) == ["acme", "zerossl"]


def test_lan_sites_refuse_a_missing_addon_folder_and_write_nothing(tmp_path):
    shutil.copy(FIXTURES / "Caddyfile.localai", tmp_path / "Caddyfile")
    with pytest.raises(InvalidInput, match="caddy-addon"):
        caddy.write_lan_sites(tmp_path, {"N8N_HOSTNAME": "n8n.home.lan"})
    assert not list(tmp_path.rglob(caddy.LAN_FILE))


def test_private_names_of_caddyfile_sites_go_to_the_addon_not_the_env(tmp_path):
    stack = recipe_stack(tmp_path)
    names = {"N8N_HOSTNAME": "n8n.home.lan", "OLLAMA_HOSTNAME": "ollama.home.lan", "WEBUI_HOSTNAME": ""}
    env, lan = caddy.split_lan_names(stack, names, private=True, addon_dir="addons")
    assert lan == {"N8N_HOSTNAME": "n8n.home.lan"}
    assert env == {"OLLAMA_HOSTNAME": "ollama.home.lan"}  # no site for it in the Caddyfile: as before
    assert caddy.split_lan_names(stack, names, private=False, addon_dir="addons")[1] == {}
    assert caddy.split_lan_names(stack, names, private=True)[1] == {}  # no caddy-addon/ folder
