"""The wizard's domain without a browser: secrets generated once and never over real values,
the plan, git URL checks, and the wizard state's progress rules."""

from __future__ import annotations

import subprocess

from app.stack import secrets as gen
from app.stack.envfile import EnvDocument
from app.store import Store
from app.wizard import envdraft
from app.wizard import launch
from app.wizard import plan as planning
from app.wizard import recipe as recipes
from app.wizard import state as wizard_state
from tests.setup import fixture_stack as fx


def _stack(tmp_path, env: str | None = None):
    for rel, text in fx.files("demo", 18080).items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if env is not None:
        (tmp_path / ".env").write_text(env)
    return tmp_path


def test_generate_fills_placeholders_only_and_signs_supabase_keys(tmp_path):
    real_pw = "kept-real-password-1234567890"
    directory = _stack(tmp_path, fx.ENV_EXAMPLE.replace("your-super-secret-and-long-postgres-password", real_pw))
    recipe = recipes.for_stack(directory)
    draft = envdraft.load(directory, recipe)
    fresh = envdraft.generate_missing(draft, recipe, {})
    assert "POSTGRES_PASSWORD" not in fresh
    assert len(fresh["N8N_ENCRYPTION_KEY"]) == 64 and int(fresh["N8N_ENCRYPTION_KEY"], 16) >= 0
    assert len(fresh["VAULT_ENC_KEY"]) == 32 and len(fresh["SECRET_KEY_BASE"]) == 64
    assert fresh["LOGFLARE_PUBLIC_ACCESS_TOKEN"] != fresh["LOGFLARE_PRIVATE_ACCESS_TOKEN"]
    assert fresh["NEO4J_AUTH"].startswith("neo4j/")
    assert gen.jwt_verify(fresh["ANON_KEY"], fresh["JWT_SECRET"])["role"] == "anon"
    assert gen.jwt_verify(fresh["SERVICE_ROLE_KEY"], fresh["JWT_SECRET"])["role"] == "service_role"
    assert not any(c in v for v in fresh.values() for c in "@#%$'\"")
    again = envdraft.generate_missing(draft, recipe, fresh)
    assert again == {}  # a second click changes nothing


def test_render_keeps_comments_and_sets_values_in_place(tmp_path):
    directory = _stack(tmp_path)
    recipe = recipes.for_stack(directory)
    draft = envdraft.load(directory, recipe)
    data = envdraft.render(draft, {"ENCRYPTION_KEY": "ab" * 32, "N8N_HOSTNAME": "n8n.home.lan"})
    doc = EnvDocument.parse(data)
    assert doc.get("ENCRYPTION_KEY") == "ab" * 32 and doc.get("N8N_HOSTNAME") == "n8n.home.lan"
    text = data.decode()
    assert "# n8n credentials" in text and "# generate via `openssl rand -hex 32`" in text


def test_plan_lists_every_write_and_the_command(tmp_path):
    directory = _stack(tmp_path)
    recipe = recipes.for_stack(directory)
    state = wizard_state.WizardState(
        stack={
            "project": "demo",
            "override": "private",
            "profile": "cpu",
            "sources": {"supabase": "file:///somewhere"},
        }
    )
    plan = planning.build(directory, state, recipe)
    assert [f.path for f in plan.files] == [
        ".env",
        "supabase/",
        "searxng/settings.yml",
        "supabase/docker/.env",
    ]
    assert plan.files[0].action == "create"
    assert plan.command[-len(planning.UP_ARGS) :] == list(planning.UP_ARGS)
    assert "--profile" in plan.command and "docker-compose.override.private.yml" in plan.command
    assert plan.prepare[0].url == "file:///somewhere"
    assert not (directory / ".env").exists()


def test_git_urls_cannot_smuggle_options():
    assert launch.check_git_url("--upload-pack=touch /tmp/x") is not None
    assert launch.check_git_url("ext::sh -c touch% /tmp/x") is not None
    assert launch.check_git_url("https://github.com/supabase/supabase.git") is None
    assert launch.check_git_url("file:///srv/mirror/supabase.git") is None


def test_template_step_replaces_the_placeholder_once(tmp_path):
    directory = _stack(tmp_path)
    step = recipes.by_name("local-ai-packaged").prepare[1]
    lines: list[str] = []
    launch.run_prepare(step, directory, lines.append)
    text = (directory / "searxng" / "settings.yml").read_text()
    assert "ultrasecretkey" not in text and len(text.split('"')[1]) == 64
    assert "kept" in launch.run_prepare(step, directory, lines.append)
    assert (directory / "searxng" / "settings.yml").read_text() == text


def test_state_is_resumable_and_rerun_keeps_choices(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    state = wizard_state.load(store)
    assert state.reached == "preflight" and not state.may_open("stack")
    state.advance("preflight")
    state.stack = {"project": "demo"}
    wizard_state.save(store, state)
    again = wizard_state.load(store)
    assert again.reached == "stack" and again.may_open("stack") and not again.may_open("config")
    again.advance("preflight")  # never moves back
    assert again.reached == "stack"
    restarted = wizard_state.restart(store)
    assert restarted.reached == "preflight" and restarted.stack == {"project": "demo"}


def test_an_existing_prepare_target_that_is_no_checkout_is_used_as_it_is(tmp_path):
    """The person's own copy of the fetched folder (unpacked by hand) is kept with a note, in the
    plan and at launch; the launch does not fail on it."""
    directory = _stack(tmp_path)
    (directory / "supabase" / "docker").mkdir(parents=True)
    (directory / "supabase" / "docker" / "docker-compose.yml").write_text("services: {}\n")
    recipe = recipes.for_stack(directory)
    state = wizard_state.WizardState(stack={"project": "demo", "profiles": ["cpu"]})
    plan = planning.build(directory, state, recipe)
    kept = next(f for f in plan.files if f.path == "supabase/")
    assert kept.action == "keep" and "used as it is" in kept.summary
    step = next(s for s in plan.prepare if s.kind == "git")
    lines: list[str] = []
    note = launch.run_prepare(step, directory, lines.append)
    assert "used as it is" in note and not any(ln.startswith("$ git") for ln in lines)
    assert (directory / "supabase" / "docker" / "docker-compose.yml").read_text() == "services: {}\n"


def test_retry_takes_the_saved_stack_settings(tmp_path):
    """Stack settings saved after a wizard run are what a re-run (Retry) uses."""
    store = Store(tmp_path / "db.sqlite3")
    state = wizard_state.WizardState(stack={"project": "demo", "files": ["compose.yaml"], "profiles": []})
    wizard_state.save(store, state)
    settings = {"project": "demo", "files": ["compose.yaml", "compose.gpu.yml"], "profiles": ["gpu"]}
    wizard_state.settings_changed(store, settings)
    assert wizard_state.load(store).stack["files"] == ["compose.yaml", "compose.gpu.yml"]
    store.set_setting("stack", settings)
    again = wizard_state.restart(store)
    assert again.stack["files"] == ["compose.yaml", "compose.gpu.yml"] and again.stack["profiles"] == ["gpu"]


def test_an_existing_git_checkout_is_used_as_it_is_never_pulled(tmp_path):
    """A checkout from an earlier launch (or the person's own) is not updated behind their back:
    Review says it is kept, and the launch runs no git command in it."""
    directory = _stack(tmp_path)
    target = directory / "supabase"
    (target / "docker").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    (target / "docker" / "docker-compose.yml").write_text("services: {}\n")
    recipe = recipes.for_stack(directory)
    state = wizard_state.WizardState(stack={"project": "demo", "profiles": ["cpu"]})
    plan = planning.build(directory, state, recipe)
    kept = next(f for f in plan.files if f.path == "supabase/")
    assert kept.action == "keep" and "not updated" in kept.summary
    step = next(s for s in plan.prepare if s.kind == "git")
    lines: list[str] = []
    note = launch.run_prepare(step, directory, lines.append)
    assert "used as it is" in note and not any(ln.startswith("$ git") for ln in lines)
