"""The /config pages through the app: admin only, no-store, form save with backup and affected
services from the real Compose, conflict refusal, generate, raw mode, backups and restore."""

from __future__ import annotations

import re

import pytest

from app.stack import backups
from app.stack import secrets as gen
from app.stack.envfile import EnvDocument
from tests.config.example_env import LOCAL_AI_EXAMPLE
from tests.conftest import sign_in

COMPOSE = """\
services:
  web:
    image: {image}
    pull_policy: never
    environment:
      GREETING: ${GREETING:?say hello}
  db:
    image: {image}
    pull_policy: never
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
"""
EXAMPLE = """\
############
# [required]
# Secrets
############

# Database password (no @)
POSTGRES_PASSWORD=change-me
JWT_SECRET=your-super-secret-jwt-token-with-at-least-32-characters-long
ANON_KEY=
ENCRYPTION_KEY=generate-with-openssl # generate via `openssl rand -hex 32`

# General
GREETING=hello
"""
ENV = "# my stack\nPOSTGRES_PASSWORD=Str0ngPassw0rdX\nGREETING=hello\nEXTRA=1\n"


@pytest.fixture
def stack(make_stack):
    return make_stack({"docker-compose.yml": COMPOSE, ".env.example": EXAMPLE, ".env": ENV})


@pytest.fixture
def admin(app_factory, stack):
    app = app_factory(stack_dir=stack.dir)
    return sign_in(app, app.test_client(), "admin"), app


def version_of(html: str) -> str:
    return re.search(r'name="version" value="([^"]+)"', html).group(1)


def form_of(html: str) -> dict[str, str]:
    """The values a browser would submit from the rendered form."""
    data = {"version": version_of(html)}
    for m in re.finditer(r'<input id="in-[^"]+" name="(v\.[A-Z_0-9]+)" type="\w+"\s+value="([^"]*)"', html):
        data[m.group(1)] = m.group(2).replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")
    return data


def test_page_groups_fields_and_is_never_cached(admin):
    client, _ = admin
    r = client.get("/config/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in html
    assert "Secrets" in html and "Not in .env.example" in html
    assert 'id="field-ANON_KEY"' in html and 'id="field-EXTRA"' in html
    assert "Database password (no @)" in html
    assert 'type="password"' in html and "Str0ngPassw0rdX" in html  # masked input, value for reveal/copy
    assert "Placeholder" not in html.split('id="field-POSTGRES_PASSWORD"')[1].split('id="field-')[0]


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_non_admins_are_refused(app_factory, stack, role):
    app = app_factory(stack_dir=stack.dir)
    client = sign_in(app, app.test_client(), role)
    assert client.get("/config/").status_code == 403
    assert client.post("/config/save", data={"version": "x"}).status_code == 403
    assert client.get("/config/backups").status_code == 403


def test_save_writes_one_line_backs_up_and_lists_affected_services(admin, stack):
    client, app = admin
    html = client.get("/config/").get_data(as_text=True)
    data = form_of(html)
    data["v.GREETING"] = "it's $HOME #1"
    r = client.post("/config/save", data=data)
    body = r.get_data(as_text=True)
    assert r.status_code == 200, body
    text = (stack.dir / ".env").read_text()
    assert text == ENV.replace("GREETING=hello", 'GREETING="it\'s $$HOME #1"')
    assert "Saved." in body and "Recreate web" in body and "Recreate db" not in body
    [b] = backups.list_backups(stack.dir)
    assert b.path.read_text() == ENV
    events = app.extensions["stackpilot.store"].audit_events()
    assert events[0].action == "config.save" and events[0].target == "GREETING"
    assert "HOME" not in events[0].detail and "HOME" not in events[0].target


def test_stale_form_is_refused_with_a_diff(admin, stack):
    client, _ = admin
    data = form_of(client.get("/config/").get_data(as_text=True))
    (stack.dir / ".env").write_text(ENV.replace("EXTRA=1", "EXTRA=2"))
    data["v.GREETING"] = "mine"
    r = client.post("/config/save", data=data, headers={"HX-Request": "true"})
    body = r.get_data(as_text=True)
    assert r.status_code == 409
    assert "changed" in body and "+EXTRA=1" in body and "-EXTRA=2" in body
    assert "Str0ngPassw0rdX" not in body
    assert "EXTRA=2" in (stack.dir / ".env").read_text() and "mine" not in (stack.dir / ".env").read_text()


def test_kind_guesses_warn_but_never_block_the_save(admin, stack):
    """Issue 10: a value that fails only a guessed kind (here hex, from the example's comment) is saved
    with a warning; it used to be refused."""
    client, _ = admin
    data = form_of(client.get("/config/").get_data(as_text=True))
    data["v.ENCRYPTION_KEY"] = "not-hex"
    r = client.post("/config/save", data=data)
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "Saved." in body and "hex characters" in body
    assert EnvDocument.load(stack.dir / ".env").get("ENCRYPTION_KEY") == "not-hex"


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("GREETING", "", "Compose refuses to start while this is empty (say hello)"),  # ${GREETING:?say hello}
        (
            "ANON_KEY",
            gen.supabase_key("anon", "another-secret-another-secret-xx"),
            "Not signed with the current JWT_SECRET",
        ),
    ],
)
def test_real_rules_refuse_the_save(admin, stack, key, value, says):
    client, _ = admin
    data = form_of(client.get("/config/").get_data(as_text=True))
    data["v.JWT_SECRET"] = "J" * 40
    data[f"v.{key}"] = value
    r = client.post("/config/save", data=data)
    body = r.get_data(as_text=True)
    assert r.status_code == 422, body
    assert "Nothing was saved" in body and says in body
    assert (stack.dir / ".env").read_text() == ENV


def test_generate_missing_fills_only_missing_and_placeholders(admin, stack):
    client, _ = admin
    data = form_of(client.get("/config/").get_data(as_text=True))
    r = client.post("/config/generate-missing", data=data)
    out = form_of(r.get_data(as_text=True))
    assert out["v.POSTGRES_PASSWORD"] == "Str0ngPassw0rdX"  # a real value stays
    assert re.fullmatch(r"[0-9a-f]{64}", out["v.ENCRYPTION_KEY"])
    assert len(out["v.JWT_SECRET"]) >= 32 and out["v.JWT_SECRET"].isalnum()
    assert gen.jwt_verify(out["v.ANON_KEY"], out["v.JWT_SECRET"])["role"] == "anon"
    assert (stack.dir / ".env").read_text() == ENV  # nothing saved until Save
    r = client.post("/config/save", data=out)
    assert r.status_code == 200
    saved = EnvDocument.load(stack.dir / ".env")
    assert saved.get("ENCRYPTION_KEY") == out["v.ENCRYPTION_KEY"]


def test_generating_jwt_secret_resigns_its_jwts_at_once(admin, stack):
    """Issue 10: the editor and the wizard agree: a new JWT_SECRET re-signs ANON_KEY in the same step
    (it used to leave ANON_KEY red behind a Re-sign button)."""
    client, _ = admin
    data = form_of(client.get("/config/").get_data(as_text=True))
    data = form_of(client.post("/config/generate-missing", data=data).get_data(as_text=True))
    old_anon = data["v.ANON_KEY"]
    r = client.post("/config/generate/JWT_SECRET", data=data)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["HX-Retarget"] == "#config-form"
    html = r.get_data(as_text=True)
    assert "re-signed ANON_KEY" in html and "Not signed with the current JWT_SECRET" not in html
    out = form_of(html)
    assert out["v.JWT_SECRET"] != data["v.JWT_SECRET"] and out["v.ANON_KEY"] != old_anon
    assert gen.jwt_verify(out["v.ANON_KEY"], out["v.JWT_SECRET"])["role"] == "anon"
    out = form_of(client.post("/config/resign/JWT_SECRET", data=out).get_data(as_text=True))  # still offered
    assert gen.jwt_verify(out["v.ANON_KEY"], out["v.JWT_SECRET"])


def test_raw_mode_saves_with_the_same_checks(admin, stack):
    client, _ = admin
    html = client.get("/config/raw").get_data(as_text=True)
    version = version_of(html)
    r = client.post("/config/raw", data={"version": version, "text": "A='open\r\n"})
    assert r.status_code == 422 and "never closed" in r.get_data(as_text=True)
    new = ENV.replace("EXTRA=1", "EXTRA=2").replace("\n", "\r\n")  # browsers send CRLF
    r = client.post("/config/raw", data={"version": version, "text": new})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert (stack.dir / ".env").read_bytes() == ENV.replace("EXTRA=1", "EXTRA=2").encode()


def test_backups_diff_masks_secrets_and_restore_backs_up_first(admin, stack):
    client, _ = admin
    data = form_of(client.get("/config/").get_data(as_text=True))
    data["v.POSTGRES_PASSWORD"] = "An0therStrongOne"
    assert client.post("/config/save", data=data, headers={"HX-Request": "true"}).status_code == 200
    # the db password changed; no volume exists, so no confirmation was needed
    [b] = backups.list_backups(stack.dir)
    page = client.get("/config/backups").get_data(as_text=True)
    assert b.name in page
    diff = client.get(f"/config/backups/{b.name}/diff").get_data(as_text=True)
    assert "POSTGRES_PASSWORD" in diff and "Str0ngPassw0rdX" not in diff and "An0therStrongOne" not in diff
    shown = client.get(f"/config/backups/{b.name}/diff?reveal=1").get_data(as_text=True)
    assert "Str0ngPassw0rdX" in shown and "An0therStrongOne" in shown
    dl = client.get(f"/config/backups/{b.name}/download")
    assert dl.data == ENV.encode() and "attachment" in dl.headers["Content-Disposition"]
    version = EnvDocument.load(stack.dir / ".env").version
    r = client.post(f"/config/backups/{b.name}/restore", data={"version": version})
    assert r.status_code == 200 and "Restored" in r.get_data(as_text=True)
    assert (stack.dir / ".env").read_text() == ENV
    assert len(backups.list_backups(stack.dir)) == 2
    assert client.get("/config/backups/..%2F.env/diff").status_code == 404


def test_database_password_change_asks_first_when_its_volume_exists(make_stack, app_factory, docker_engine):
    compose = (
        COMPOSE.replace(
            "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n",
            "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n    volumes:\n      - dbdata:/data\n",
        )
        + "volumes:\n  dbdata: {}\n"
    )
    proj = make_stack({"docker-compose.yml": compose, ".env.example": EXAMPLE, ".env": ENV})
    proj.compose("create", "db")
    app = app_factory(stack_dir=proj.dir)
    app.extensions["stackpilot.store"].set_setting("stack", {"project": proj.project})
    client = sign_in(app, app.test_client(), "admin")
    data = form_of(client.get("/config/").get_data(as_text=True))
    data["v.POSTGRES_PASSWORD"] = "An0therStrongOne"
    r = client.post("/config/save", data=data)
    html = r.get_data(as_text=True)
    assert "Save anyway" in html and f"{proj.project}_dbdata" in html
    assert (proj.dir / ".env").read_text() == ENV
    data["confirm_db"] = "1"
    r = client.post("/config/save", data=data)
    assert "Saved." in r.get_data(as_text=True)
    assert EnvDocument.load(proj.dir / ".env").get("POSTGRES_PASSWORD") == "An0therStrongOne"
    # Issue 10: restoring the old file changes the database password too, so it is held the same way
    [b] = backups.list_backups(proj.dir)
    version = EnvDocument.load(proj.dir / ".env").version
    r = client.post(f"/config/backups/{b.name}/restore", data={"version": version})
    html = r.get_data(as_text=True)
    assert "was not restored" in html and "Restore anyway" in html and f"{proj.project}_dbdata" in html
    assert EnvDocument.load(proj.dir / ".env").get("POSTGRES_PASSWORD") == "An0therStrongOne"
    r = client.post(f"/config/backups/{b.name}/restore", data={"version": version, "confirm_db": "1"})
    assert "Restored" in r.get_data(as_text=True)
    assert (proj.dir / ".env").read_text() == ENV


def test_missing_env_offers_to_create_it_from_the_example(make_stack, app_factory):
    proj = make_stack({"docker-compose.yml": COMPOSE, ".env.example": EXAMPLE})
    app = app_factory(stack_dir=proj.dir)
    client = sign_in(app, app.test_client(), "admin")
    assert "Create .env from .env.example" in client.get("/config/").get_data(as_text=True)
    r = client.post("/config/create")
    assert r.headers["HX-Redirect"] == "/config/"
    assert (proj.dir / ".env").read_text() == EXAMPLE
    assert oct((proj.dir / ".env").stat().st_mode & 0o777) == "0o600"


def test_no_stack_dir_says_what_to_do(admin_client):
    html = admin_client.get("/config/").get_data(as_text=True)
    assert "STACKPILOT_STACK_DIR" in html


def test_recipe_copy_is_synced_on_save(make_stack, app_factory):
    files = {
        "docker-compose.yml": COMPOSE,
        "docker-compose.override.private.yml": "services: {}\n",
        ".env.example": LOCAL_AI_EXAMPLE,
        ".env": LOCAL_AI_EXAMPLE,
        "supabase/docker/.env": LOCAL_AI_EXAMPLE,
    }
    proj = make_stack(files)
    app = app_factory(stack_dir=proj.dir)
    client = sign_in(app, app.test_client(), "admin")
    html = client.get("/config/").get_data(as_text=True)
    assert "Local AI Packaged" in html and "exactly 32 characters" in html
    data = form_of(html)
    data["v.POSTGRES_HOST"] = "db2"
    r = client.post("/config/save", data=data)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert (proj.dir / "supabase/docker/.env").read_bytes() == (proj.dir / ".env").read_bytes()
    assert "POSTGRES_HOST=db2" in (proj.dir / ".env").read_text()
