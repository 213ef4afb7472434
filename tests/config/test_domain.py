"""Secrets, JWTs, the .env.example schema, validation, backups and the safe save."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat

import pytest

from app.errors import EnvConflict
from app.errors import InvalidInput
from app.errors import NotFound
from app.stack import backups
from app.stack import recipes
from app.stack import schema
from app.stack import secrets as gen
from app.stack.envfile import EnvDocument
from tests.config.example_env import LOCAL_AI_EXAMPLE


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# -- secrets -----------------------------------------------------------------------------------
def test_passwords_never_need_quoting_or_percent_encoding():
    for _ in range(200):
        pw = gen.password(40)
        assert len(pw) == 40 and pw.isalnum()
    assert len(gen.hex_key(32)) == 64 and int(gen.hex_key(32), 16) >= 0


def test_supabase_keys_verify_with_the_secret_through_stdlib_hmac():
    secret = gen.password(40)
    token = gen.supabase_key("anon", secret, now=1_700_000_000)
    head, body, sig = token.split(".")
    expected = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(expected, b64d(sig))
    assert json.loads(b64d(head)) == {"alg": "HS256", "typ": "JWT"}
    payload = json.loads(b64d(body))
    assert payload == {
        "role": "anon",
        "iss": "supabase",
        "iat": 1_700_000_000,
        "exp": 1_700_000_000 + 5 * 365 * 24 * 3600,
    }
    assert gen.jwt_verify(token, secret) == payload
    assert gen.jwt_verify(token, secret + "x") is None
    assert gen.jwt_verify(token[:-2] + "AA", secret) is None


# -- schema ------------------------------------------------------------------------------------
def local_ai_schema():
    return schema.parse_example(LOCAL_AI_EXAMPLE, recipes.load("local-ai-packaged").kinds)


def test_example_sections_help_and_flags():
    s = local_ai_schema()
    titles = [sec.title for sec in s.sections]
    assert titles[:5] == ["Required", "Supabase Secrets", "Neo4j Secrets", "Langfuse credentials", "Caddy Config"]
    db = s.variables["POSTGRES_HOST"]
    assert db.section == "Database"
    assert "logical replication" in next(x.help for x in s.sections if x.title == "Database")
    host = s.variables["N8N_HOSTNAME"]
    assert host.commented and not host.required and host.kind.name == "hostname"
    assert s.variables["ENCRYPTION_KEY"].example == "generate-with-openssl"
    assert "openssl rand -hex 32" in s.variables["ENCRYPTION_KEY"].help
    assert s.variables["POSTGRES_PASSWORD"].required


def test_kinds_inferred_without_recipe():
    s = schema.parse_example(LOCAL_AI_EXAMPLE)
    k = {key: v.kind for key, v in s.variables.items()}
    assert k["ENCRYPTION_KEY"].name == "hex" and k["ENCRYPTION_KEY"].bytes == 32
    assert k["ANON_KEY"].name == "jwt" and k["ANON_KEY"].role == "anon"
    assert k["JWT_SECRET"].name == "secret" and k["JWT_SECRET"].min_length == 32
    assert k["POSTGRES_PASSWORD"].name == "password" and k["POSTGRES_PASSWORD"].database
    assert k["NEO4J_AUTH"].name == "userpass"
    assert k["POSTGRES_PORT"].name == "port"
    assert k["LETSENCRYPT_EMAIL"].name == "text"  # its example is the word "internal": evidence beats the name
    assert k["POSTGRES_HOST"].name == "host"


@pytest.mark.parametrize(
    ("key", "value", "level"),
    [
        ("ENCRYPTION_KEY", "abc", "error"),
        ("ENCRYPTION_KEY", "ab" * 32, None),
        ("VAULT_ENC_KEY", "k" * 31, "error"),
        ("VAULT_ENC_KEY", "k" * 32, None),
        ("POSTGRES_PASSWORD", "has@sign-and-long", "error"),
        ("POSTGRES_PASSWORD", "A1b2C3d4E5f6G7", None),
        ("POSTGRES_PASSWORD", "your-super-secret-and-long-postgres-password", "warn"),
        ("JWT_SECRET", "short", "error"),
        ("NEO4J_AUTH", "neo4j", "error"),
        ("NEO4J_AUTH", "neo4j/pw", None),
        ("N8N_HOSTNAME", "n8n.example.com", None),
        ("N8N_HOSTNAME", "bad host", "error"),
        ("LETSENCRYPT_EMAIL", "internal", None),
        ("LETSENCRYPT_EMAIL", "a@b.co", None),
        ("LETSENCRYPT_EMAIL", "nope", "error"),
        ("POSTGRES_PORT", "70000", "warn"),  # a guess: warns
        ("ANON_KEY", "not-a-jwt", "error"),
    ],
)
def test_validation(key, value, level):
    s = local_ai_schema()
    var = s.variables[key]
    findings = schema.check(key, value, var.kind, {"JWT_SECRET": "j" * 40}, example=var.example, required=var.required)
    levels = {f.level for f in findings}
    if level is None:
        assert not levels, findings
    else:
        assert level in levels, findings


def test_jwt_must_be_signed_by_current_secret_and_role():
    s = local_ai_schema()
    secret = gen.password(40)
    anon = schema.generate("ANON_KEY", s.variables["ANON_KEY"].kind, {"JWT_SECRET": secret})
    kind = s.variables["ANON_KEY"].kind
    assert not schema.check("ANON_KEY", anon, kind, {"JWT_SECRET": secret})
    assert "re-sign" in schema.check("ANON_KEY", anon, kind, {"JWT_SECRET": "o" * 40})[0].message
    service = schema.generate("SERVICE_ROLE_KEY", s.variables["SERVICE_ROLE_KEY"].kind, {"JWT_SECRET": secret})
    assert "role" in schema.check("ANON_KEY", service, kind, {"JWT_SECRET": secret})[0].message
    with pytest.raises(InvalidInput):
        schema.generate("ANON_KEY", kind, {"JWT_SECRET": ""})


def test_logflare_tokens_must_differ():
    s = local_ai_schema()
    kind = s.variables["LOGFLARE_PUBLIC_ACCESS_TOKEN"].kind
    same = "t" * 40
    findings = schema.check("LOGFLARE_PUBLIC_ACCESS_TOKEN", same, kind, {"LOGFLARE_PRIVATE_ACCESS_TOKEN": same})
    assert any("differ" in f.message for f in findings)


def test_every_generated_secret_validates():
    s = local_ai_schema()
    values = {"JWT_SECRET": schema.generate("JWT_SECRET", s.variables["JWT_SECRET"].kind, {})}
    for key, var in s.variables.items():
        if var.kind.generatable:
            values.setdefault(key, schema.generate(key, var.kind, values))
    for key, value in values.items():
        var = s.variables[key]
        assert not schema.check(key, value, var.kind, values, example=var.example), key


# -- backups and the safe save -------------------------------------------------------------------
def test_save_backs_up_then_writes_and_keeps_mode(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"A=1\n")
    os.chmod(env, 0o640)
    v1 = EnvDocument.load(env).version
    result = backups.save_env(env, b"A=2\n", v1, keep=5)
    assert env.read_bytes() == b"A=2\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert result.changed_keys == ("A",)
    assert result.backup.path.read_bytes() == b"A=1\n"
    assert stat.S_IMODE(result.backup.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backups.backup_dir(tmp_path).stat().st_mode) == 0o700


def test_stale_save_is_refused_with_a_masked_diff(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"A=1\nSECRET=old-secret\n")
    v1 = EnvDocument.load(env).version
    env.write_bytes(b"A=someone-else\nSECRET=their-secret\n")
    with pytest.raises(EnvConflict) as info:
        backups.save_env(env, b"A=mine\nSECRET=my-secret\n", v1, keep=5, mask_keys={"SECRET"})
    assert env.read_bytes() == b"A=someone-else\nSECRET=their-secret\n"
    assert "-A=someone-else" in info.value.detail and "+A=mine" in info.value.detail
    assert "secret" in info.value.detail and "their-secret" not in info.value.detail
    assert "my-secret" not in info.value.detail
    assert not backups.list_backups(tmp_path)


def test_backups_rotate(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"N=0\n")
    for i in range(1, 8):
        backups.save_env(env, f"N={i}\n".encode(), EnvDocument.load(env).version, keep=3)
    kept = backups.list_backups(tmp_path)
    assert [b.path.read_bytes() for b in kept] == [b"N=6\n", b"N=5\n", b"N=4\n"]


def test_restore_backs_up_current_first(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"N=1\n")
    backups.save_env(env, b"N=2\n", EnvDocument.load(env).version, keep=10)
    first = backups.list_backups(tmp_path)[0]
    assert first.path.read_bytes() == b"N=1\n"
    backups.restore(env, first.name, EnvDocument.load(env).version, keep=10)
    assert env.read_bytes() == b"N=1\n"
    assert backups.list_backups(tmp_path)[0].path.read_bytes() == b"N=2\n"


@pytest.mark.parametrize("name", ["../.env", ".env", "x", ".env.20250101T000000.000000Z/../../etc"])
def test_backup_names_cannot_escape(tmp_path, name):
    with pytest.raises(NotFound):
        backups.get_backup(tmp_path, name)


def test_recipe_copy_kept_in_sync(tmp_path):
    (tmp_path / "supabase" / "docker").mkdir(parents=True)
    env = tmp_path / ".env"
    result = backups.save_env(env, b"A=1\n", "absent", keep=3, copies=["supabase/docker/.env"])
    assert (tmp_path / "supabase/docker/.env").read_bytes() == b"A=1\n"
    assert result.copies == ("supabase/docker/.env",)
    with pytest.raises(InvalidInput):
        backups.save_env(env, b"A=2\n", EnvDocument.load(env).version, keep=3, copies=["../outside"])


def test_recipe_facts():
    r = recipes.load("local-ai-packaged")
    assert r.project == "localai" and r.profiles == ("cpu", "gpu-nvidia", "gpu-amd")
    assert r.overrides == {
        "private": "docker-compose.override.private.yml",
        "public": "docker-compose.override.public.yml",
    }
    assert [s.action for s in r.prepare] == ["git_sparse", "secret_template"]
    assert r.kinds["N8N_USER_MANAGEMENT_JWT_SECRET"].bytes == 32
    with pytest.raises(KeyError):
        recipes.load("../etc")
