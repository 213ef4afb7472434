"""The wizard's Private names for a recipe stack with its own Caddy: they go to the file that Caddy
imports (tls internal), not to the hostname variables (Caddy would put them under ACME)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.stack import caddy
from app.wizard import plan as planning
from app.wizard import recipe as recipes
from app.wizard import state as wizard_state
from tests.setup import fixture_stack as fx

FIXTURES = Path(__file__).parent / "fixtures"


def _stack(tmp_path: Path, caddy_addon: bool = True) -> Path:
    for rel, text in fx.files("demo", 18080).items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    shutil.copy(FIXTURES / "Caddyfile.localai", tmp_path / "Caddyfile")
    if caddy_addon:
        (tmp_path / "caddy-addon").mkdir()
    return tmp_path


def _state(mode: str) -> wizard_state.WizardState:
    return wizard_state.WizardState(
        stack={"project": "demo", "override": "private", "profile": "cpu"},
        https={"mode": mode, "hostnames": {"N8N_HOSTNAME": "n8n.home.lan"}, "management": "manage.home.lan"},
    )


def test_private_names_of_the_stacks_caddy_sites_go_to_its_addon(tmp_path):
    directory = _stack(tmp_path)
    plan = planning.build(directory, _state("private"), recipes.for_stack(directory))
    assert plan.lan_sites == {"N8N_HOSTNAME": "n8n.home.lan"}
    assert b"n8n.home.lan" not in plan.env_bytes
    assert b"MANAGEMENT_TLS='tls internal'" in plan.env_bytes
    assert f"caddy-addon/{caddy.LAN_FILE}" in [f.path for f in plan.files]


def test_public_names_and_stacks_without_the_addon_folder_keep_the_variables(tmp_path):
    directory = _stack(tmp_path / "a")
    public = planning.build(directory, _state("public"), recipes.for_stack(directory))
    assert public.lan_sites == {} and b"N8N_HOSTNAME=n8n.home.lan" in public.env_bytes
    plain = _stack(tmp_path / "b", caddy_addon=False)
    private = planning.build(plain, _state("private"), recipes.for_stack(plain))
    assert private.lan_sites == {} and b"N8N_HOSTNAME=n8n.home.lan" in private.env_bytes
