"""Issues 10 and 19, the .env side: kinds from evidence, real-rule refusals only (and only for values a
save changes), profiles decide what is validated, multi-line values and `${...}` references survive
the form, CRLF survives the raw editor, a symlinked .env is written through, restore is guarded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.stack import envsave
from app.stack import schema as schema_mod
from app.stack import variables
from app.stack.envfile import EnvDocument
from tests.conftest import sign_in
from tests.corpus.test_corpus_env import read_form

FIXTURE = Path(__file__).resolve().parents[1] / "corpus" / "fixtures" / "pem-two-profiles"
NEW_PEM = "-----BEGIN PRIVATE KEY-----\nAAAA/bbbb+CCCC==\n  indented line\n-----END PRIVATE KEY-----"


# -- kinds and secrets from evidence -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "example", "help_text", "contexts", "kind", "generatable"),
    [
        ("ENABLE_EMAIL_SIGNUP", "true", "", (), "boolean", False),  # a boolean whatever its name
        ("EMAIL_PORT", "25", "", (), "port", False),
        ("mail__from", "'Acme Support' <support@example.com>", "", (), "text", False),
        ("MAILER_URLPATHS_EMAIL_CHANGE", "/auth/v1/verify", "", (), "path", False),
        ("SMTP_ADMIN_EMAIL", "admin@example.com", "", (), "email", False),
        ("ACCESS_TOKEN_EXPIRY_MINUTES", "5", "", (), "number", False),
        ("LLM_MAX_TOKENS", "4000", "", (), "number", False),
        ("OPENAI_TOKENIZER", "cl100k_base", "", (), "text", False),
        ("OPENAI_API_KEY", "", "", (), "secret", False),  # third-party: an input, never generated
        ("SESSION_SECRET", "", "", (), "secret", True),  # empty, secret-ish name
        ("RUNNERS_AUTH_TOKEN", "changeRunnerAuthToken", "", (), "secret", True),  # placeholder text
        ("SECRET_KEY_BASE", "UpNVntn3cDxHJpq99YMc1T1AQgQpc8kfYTuRgBiYa15BLrx8etQoXz3gZv1", "", (), "secret", True),
        ("DB_PASSWORD", "postgres", "You should change it to a random password", (), "password", True),
        ("DB_PASSWORD", "123", "", (), "password", False),  # a number: warned as short, never replaced
        ("JWT_PUBLIC_KEY", "", "", (), "secret", False),  # one half of a pair the app makes itself
        ("S3_ENDPOINT", "minio", "", (), "host", False),
        ("_APP_EXECUTOR_HOST", "http://exc1/v1", "", (), "host", False),
        ("HEALTHCHECK_TIMEOUT", "1m30s", "", (), "text", False),
        ("WEB_PORT", "", "", ("port",), "port", False),  # from how the compose file uses it
        ("READONLY", "", "", ("bool",), "boolean", False),
    ],
)
def test_kind_follows_the_evidence(key, example, help_text, contexts, kind, generatable):
    k = schema_mod.infer_kind(key, example, help_text, contexts)
    assert (k.name, k.generatable) == (kind, generatable), k


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("S3_ENDPOINT", "minio", True),
        ("S3_ENDPOINT", "minio:9000", True),
        ("S3_ENDPOINT", "https://s3.example", True),
        ("SMTP_HOST", "smtp.example.com", True),
        ("SMTP_HOST", "not a host", False),
    ],
)
def test_host_keys_take_a_bare_host_or_a_url(key, value, ok):
    findings = schema_mod.check(key, value, schema_mod.infer_kind(key, "", ""), {})
    assert (not findings) is ok, findings
    assert all(f.level == "warn" for f in findings)  # a guess never refuses


def test_immich_charset_comment_is_respected_by_the_generator():
    example = (
        "# Connection secret for postgres. You should change it to a random password\n"
        "# Please use only the characters `A-Za-z0-9`, without special characters or spaces\n"
        "DB_PASSWORD=postgres\n"
    )
    s = schema_mod.parse_example(example)
    assert s.variables["DB_PASSWORD"].kind.charset == "A-Za-z0-9"
    new = schema_mod.fill_secrets({"DB_PASSWORD": "postgres"}, s)["DB_PASSWORD"]
    assert new.isascii() and new.isalnum() and len(new) >= 32
    assert schema_mod.check("DB_PASSWORD", "pa$$word-long-enough", s.variables["DB_PASSWORD"].kind, {})


def test_optional_is_the_default_and_required_needs_a_marker():
    example = "# required\nA_SECRET=\nB_KEY=\n# Public URL (required)\n#PUBLIC_URL=https://x\nC=1\n"
    s = schema_mod.parse_example(example)
    assert {k for k, v in s.variables.items() if v.required} == {"A_SECRET", "PUBLIC_URL"}
    assert schema_mod.needs_input(s.variables["PUBLIC_URL"], "") and not schema_mod.needs_input(
        s.variables["A_SECRET"], ""
    )  # a generatable secret never blocks: the generator fills it


def fixture_schema(tmp_path) -> tuple[Path, EnvDocument, schema_mod.Schema]:
    work = tmp_path / "stack"
    shutil.copytree(FIXTURE, work)
    doc = EnvDocument.load(work / ".env")
    return work, doc, envsave.build_schema(work, [], [], doc, (work / ".env.example").read_bytes())


def test_two_profiles_from_dotenv_decide_what_is_validated(tmp_path):
    _, doc, s = fixture_schema(tmp_path)
    assert variables.profiles_from_env(doc.values()) == ["db", "vector"]
    assert s.active == {"app", "db", "qdrant"}
    assert s.variables["S3_ENDPOINT"].used is False and s.variables["DB_PASSWORD"].used is True
    assert s.variables["SESSION_SECRET"].required_by == "compose"
    fields = {f.key: f for _, fs in schema_mod.describe(doc, s) for f in fs}
    assert not fields["S3_ENDPOINT"].findings  # "your-s3-endpoint" feeds a profile that is off
    refusals, _, _ = envsave.evaluate(
        doc.original, doc.original.replace(b"S3_ENDPOINT=your-s3-endpoint", b"S3_ENDPOINT=??"), s
    )
    assert not refusals


def test_untouched_errors_never_block_changed_ones_do(tmp_path):
    _, doc, s = fixture_schema(tmp_path)
    emptied = doc.original.replace(b"SESSION_SECRET=your-session-secret", b"SESSION_SECRET=")
    refusals, _, changed = envsave.evaluate(doc.original, emptied, s)
    assert changed == ["SESSION_SECRET"] and refusals and "set a session secret" in refusals[0][1]
    refusals, warnings, _ = envsave.evaluate(
        emptied, emptied.replace(b"LLM_MAX_TOKENS=4000", b"LLM_MAX_TOKENS=8000"), s
    )
    assert not refusals and any(k == "SESSION_SECRET" for k, _ in warnings)  # the old problem warns only


# -- the editor: references, multi-line values, CRLF, symlinks, restore ----------------------------------
@pytest.fixture
def pem_client(tmp_path, app_factory):
    work = tmp_path / "pemstack"
    shutil.copytree(FIXTURE, work)
    app = app_factory(stack_dir=work)
    return work, sign_in(app, app.test_client(), "admin")


def test_editing_one_key_keeps_references_and_pem_lines(pem_client):
    work, client = pem_client
    stock = (work / ".env").read_bytes()
    html = client.get("/config/").get_data(as_text=True)
    assert '<textarea id="in-APP_PRIVATE_KEY"' in html
    form = read_form(html)
    form["v.DB_PASSWORD"] = "AnotherStrongPassw0rd"
    r = client.post("/config/save", data=form)
    assert r.status_code == 200, r.get_data(as_text=True)[:3000]
    new = (work / ".env").read_bytes()
    assert new == stock.replace(b"DB_PASSWORD=changeme", b"DB_PASSWORD=AnotherStrongPassw0rd")
    assert b"DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db" in new  # kept as written
    doc = EnvDocument.parse(new)
    assert doc.get("DATABASE_URL") == "postgres://app:AnotherStrongPassw0rd@db:5432/app?sslmode=disable"


def test_multiline_value_round_trips_through_the_textarea(pem_client):
    work, client = pem_client
    form = read_form(client.get("/config/").get_data(as_text=True))
    form["v.APP_PRIVATE_KEY"] = NEW_PEM.replace("\n", "\r\n")  # what a browser sends
    r = client.post("/config/save", data=form)
    assert r.status_code == 200, r.get_data(as_text=True)[:3000]
    saved = EnvDocument.load(work / ".env")
    assert saved.get("APP_PRIVATE_KEY") == NEW_PEM
    again = read_form(client.get("/config/").get_data(as_text=True))
    assert again["v.APP_PRIVATE_KEY"].replace("\r\n", "\n") == NEW_PEM
    before = (work / ".env").read_bytes()
    assert client.post("/config/save", data=again).status_code == 200
    assert (work / ".env").read_bytes() == before


def test_raw_editor_keeps_crlf_of_untouched_lines(pem_client):
    work, client = pem_client
    stock = (work / ".env").read_bytes()
    assert b"\r\n" in stock and stock.count(b"\r\n") < stock.count(b"\n")  # a mixed file
    html = client.get("/config/raw").get_data(as_text=True)
    version = read_form(html)["version"]
    text = stock.decode().replace("\r\n", "\n").replace("LLM_MAX_TOKENS=4000", "LLM_MAX_TOKENS=4001")
    r = client.post("/config/raw", data={"version": version, "text": text.replace("\n", "\r\n")})
    assert r.status_code == 200, r.get_data(as_text=True)[:3000]
    assert (work / ".env").read_bytes() == stock.replace(b"LLM_MAX_TOKENS=4000", b"LLM_MAX_TOKENS=4001")


def test_symlinked_env_is_written_through_the_link(tmp_path):
    real = tmp_path / "secrets" / "stack.env"
    real.parent.mkdir()
    real.write_bytes(b"A=1\n")
    work = tmp_path / "stack"
    work.mkdir()
    (work / ".env").symlink_to(real)
    out = envsave.save(work / ".env", schema_mod.Schema(), b"A=2\n", EnvDocument.load(work / ".env").version, keep=3)
    assert out.saved and (work / ".env").is_symlink() and os.readlink(work / ".env") == str(real)
    assert real.read_bytes() == b"A=2\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["stack.env"]  # no temp file left behind
    assert out.backup and (work / ".env_backups" / out.backup).read_bytes() == b"A=1\n"


def test_restore_goes_through_the_same_guard(pem_client):
    work, client = pem_client
    env = work / ".env"
    stock = env.read_bytes()
    form = read_form(client.get("/config/").get_data(as_text=True))
    form["v.SESSION_SECRET"] = "S" * 40
    form["v.DB_PASSWORD"] = "AnotherStrongPassw0rd"
    assert client.post("/config/save", data=form).status_code == 200
    [backup] = [p.name for p in (work / ".env_backups").iterdir() if p.name.startswith(".env.")]
    # a backup that would break Compose (an emptied ${SESSION_SECRET:?}) is not restored
    bad = stock.replace(b"SESSION_SECRET=your-session-secret", b"SESSION_SECRET=")
    (work / ".env_backups" / backup).write_bytes(bad)
    version = EnvDocument.load(env).version
    r = client.post(f"/config/backups/{backup}/restore", data={"version": version})
    assert r.status_code == 422 and "was not restored" in r.get_data(as_text=True)
    assert b"S" * 40 in env.read_bytes()
    # the stock backup: restored, its placeholder database password named, the recreate offered
    (work / ".env_backups" / backup).write_bytes(stock)
    r = client.post(f"/config/backups/{backup}/restore", data={"version": version})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "Restored" in body, body[:3000]
    assert "Still placeholders: DB_PASSWORD" in body
    assert "Recreate these 2 services" in body and "<code>app</code>" in body and "<code>db</code>" in body
    assert env.read_bytes() == stock


def test_a_value_compose_cannot_read_is_refused_by_compose_itself(pem_client):
    """APP_PORT is published (`${APP_PORT:-8080}:8080`): a word there makes the real `compose config`
    fail, so the save is refused with Compose's own words, and nothing is written."""
    work, client = pem_client
    stock = (work / ".env").read_bytes()
    form = read_form(client.get("/config/").get_data(as_text=True))
    form["v.APP_PORT"] = "eighty"
    r = client.post("/config/save", data=form)
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and "Nothing was saved" in body and "Compose" in body, body[:3000]
    assert (work / ".env").read_bytes() == stock


def test_usage_scan_reads_what_compose_reads(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inc.yml").write_text(
        "services:\n  worker:\n    image: busybox\n    profiles: [jobs]\n    environment: [WORKER_TOKEN]\n"
    )
    (tmp_path / "compose.yaml").write_text(
        "include:\n  - sub/inc.yml\n"
        "services:\n"
        "  web:\n    image: ${IMAGE:-busybox}:${TAG?need a tag}\n    read_only: ${RO}\n"
        "    ports: !reset ['${WEB_PORT}:80']\n    command: echo $$NOT_A_VAR\n"
        "    volumes: ['${DATA_DIR}:/data']\n"
        "    environment: {PASSED: null, URL: 'https://${HOST}/x'}\n"
        "  side:\n    image: busybox\n    env_file: .env\n    profiles: [extra]\n"
    )
    u = variables.scan(tmp_path, [], env_raw={"DSN": "pg://${DB_PASS}@db"})
    assert u.required("TAG") == "need a tag" and u.required("IMAGE") is None
    assert u.contexts("WEB_PORT") == {"port"} and u.contexts("RO") == {"bool"} and u.contexts("DATA_DIR") == {"bind"}
    assert u.contexts("IMAGE") == {"image"} and u.contexts("HOST") == {"url"}
    assert "NOT_A_VAR" not in u.refs and "web" in u.services("PASSED") and "worker" in u.services("WORKER_TOKEN")
    assert u.active_services([]) == {"web"} and u.active_services(["jobs", "extra"]) == {"web", "worker", "side"}
    assert u.is_used("WORKER_TOKEN", u.active_services([])) is False
    assert u.is_used("WORKER_TOKEN", u.active_services(["jobs"])) is True
    assert u.is_used("ANYTHING", u.active_services(["extra"])) is True  # `env_file: .env` hands it every key
    assert u.is_used("DB_PASS", u.active_services([])) is False  # read only by `side` (env_file), not started
    u = variables.scan(tmp_path / "sub", ["inc.yml"], env_raw={"WORKER_TOKEN": "x-${SEED}"})
    assert u.is_used("SEED", u.active_services(["jobs"])) is True  # through the .env value that refers to it
    assert u.is_used("SEED", u.active_services([])) is False


def test_create_copies_the_example_even_when_it_breaks_a_rule(tmp_path, app_factory):
    work = tmp_path / "stack"
    shutil.copytree(FIXTURE, work)
    (work / ".env").unlink()
    example = (work / ".env.example").read_bytes().replace(b"SESSION_SECRET=your-session-secret", b"SESSION_SECRET=")
    (work / ".env.example").write_bytes(example)
    client = sign_in(app := app_factory(stack_dir=work), app.test_client(), "admin")
    assert client.post("/config/create").headers["HX-Redirect"] == "/config/"
    assert (work / ".env").read_bytes() == example
    html = client.get("/config/").get_data(as_text=True)
    assert "Compose refuses to start while this is empty (set a session secret)" in html
