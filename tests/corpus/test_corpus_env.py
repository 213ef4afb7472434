"""The .env side of every corpus stack (issues 10 and 19): the schema builds and refuses nothing
stock, the real editor saves the stock .env byte for byte, a one-key change touches one line, the
secret filler changes only secret placeholders, and "used by the active profiles" agrees with the
real Compose. Stacks come from index.yaml plus the fixtures in env_corpus.yaml; what a stack
cannot do here is data in env_corpus.yaml, never a name test in this code."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from app.stack import envsave
from app.stack import schema as schema_mod
from app.stack import secrets as gen
from app.stack.envfile import EnvDocument
from tests.conftest import compose_bin
from tests.conftest import sign_in
from tests.corpus import corpus

HERE = Path(__file__).resolve().parent
DATA = yaml.safe_load((HERE / "env_corpus.yaml").read_text(encoding="utf-8"))
NOT_SECRET_SHAPES = {"number", "boolean", "size", "duration", "url", "path", "email"}


@dataclass(frozen=True)
class FixtureStack(corpus.CorpusStack):
    """A stack kept next to this test, shaped like an index.yaml entry."""

    @property
    def source(self) -> Path:
        return HERE / self.entry["dir"]


def all_stacks() -> list:
    extra = [pytest.param(FixtureStack(e["name"], e), id=e["name"]) for e in DATA.get("extra_stacks") or ()]
    return corpus.params() + extra


def limits(stack) -> dict:
    return (DATA.get("limits") or {}).get(stack.name) or {}


def expect(stack) -> dict:
    return stack.entry.get("expect") or {}


def env_paths(stack, workdir: Path) -> list[Path]:
    """Every env file of the stack that exists in the copy: the example, the .env, the env_files."""
    rel = [stack.env_example] if stack.env_example else []
    for path in [stack.entry.get("env_target"), *(stack.entry.get("env_files") or ())]:
        if path:
            rel.append(os.path.relpath(path, stack.workdir or "."))
    return [workdir / r for r in dict.fromkeys(rel) if (workdir / r).is_file()]


def schema_for(stack, workdir: Path, path: Path) -> tuple[EnvDocument, schema_mod.Schema]:
    """The schema exactly as the editor builds it (app.stack.envsave.build_schema)."""
    doc = EnvDocument.load(path)
    example = envsave.discover_example(workdir)
    is_dotenv = path.name == ".env" and path.parent == workdir
    example_bytes = example.read_bytes() if (example is not None and is_dotenv) else None
    if not is_dotenv:  # an env_file or the example itself: it is its own example
        example_bytes = doc.original
    return doc, envsave.build_schema(workdir, stack.files, stack.profiles, doc, example_bytes)


@pytest.fixture
def copied(request, tmp_path):
    stack = corpus.require(request.param)
    workdir = stack.copy_to(tmp_path / stack.name, with_copies=True)
    return stack, workdir


def parametrize_stacks(fn):
    return pytest.mark.parametrize("copied", all_stacks(), indirect=True)(fn)


# -- (a) the schema builds; nothing stock is refused; the corpus traps hold ---------------------------
@parametrize_stacks
def test_schema_builds_and_no_stock_value_is_refused(copied):
    stack, workdir = copied
    paths = env_paths(stack, workdir)
    if not paths:  # no env file at all: the schema still comes from the compose files alone
        s = envsave.build_schema(workdir, stack.files, stack.profiles, EnvDocument(exists=False), None)
        for key, ref in s.usage.refs.items():  # ${KEY:?} in the compose files: a field, even with no example
            assert ref.required is None or s.variables[key].required_by == "compose", key
        check_traps(stack, EnvDocument(exists=False), s)
        return
    for path in paths:
        doc, s = schema_for(stack, workdir, path)
        refusals, _warnings, changed = envsave.evaluate(None, doc.original, s)
        assert not refusals, (path.name, refusals)  # written as a whole new file: still nothing refused
        assert set(changed) <= set(doc.keys())
        check_traps(stack, doc, s)


def _trap_keys(tag: str) -> list[str]:
    body = tag.split(":", 1)[1]
    return [k for k in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.split(r"[=(<]", body, maxsplit=1)[0])]


def check_traps(stack, doc: EnvDocument, s: schema_mod.Schema) -> None:
    """The index's trap tags, as checks: a boolean named EMAIL is no e-mail, an empty optional key
    neither warns nor blocks, a charset-limited secret is generated in its charset, …"""
    values = doc.values()
    fields = {f.key: f for _, fs in schema_mod.describe(doc, s) for f in fs}
    filled = schema_mod.fill_secrets(values, s)
    for tag in stack.entry.get("traps") or ():
        kind, _, _ = tag.partition(":")
        keys = [k for k in _trap_keys(tag) if k in fields] if ":" in tag else []
        for key in keys:
            f = fields[key]
            if kind in (
                "email-named-non-email",
                "host-named-url-values",
                "quoted-display-name-address",
                "url-key-with-non-url-value",
                "python-style-boolean",
                "values-with-spaces",
            ):
                assert not [x for x in f.findings if x.level == "error"], (tag, f.findings)
                if kind == "email-named-non-email":
                    assert f.kind.name != "email" and not f.findings, (tag, f.kind, f.findings)
            elif kind == "empty-optional-key":
                assert not f.required and not f.findings and key not in filled, (tag, f.findings)
                assert not schema_mod.needs_input(s.variable(key), values.get(key))
            elif kind == "charset-restricted-secret":
                assert re.fullmatch(r"[A-Za-z0-9]+", filled[key]), tag
            elif kind == "min-length-secret":
                assert len(filled[key]) >= int(tag.rsplit(">=", 1)[1]), tag
            elif kind == "required-secret-shipped-empty":
                assert filled.get(key), tag
            elif kind in ("required-var", "required-vars"):
                assert f.required_by == "compose", (tag, f)
                assert key in filled or not f.kind.generatable, tag
            elif kind == "weak-default-secret":
                assert key not in filled and f.findings, (tag, f.findings)  # a number: warned, never replaced
            elif kind == "unquoted-value-with-spaces" and "exactly" in tag:
                assert len(filled[key]) == int(re.search(r"exactly (\d+)", tag).group(1)), tag
        if kind == "dependent-secrets":
            signed, signer = tag.split(":", 1)[1].split("<-")
            for key in signed.split("/"):
                assert gen.jwt_verify(filled[key], filled[signer]), tag
        if kind == "shipped-dotenv-with-placeholder-secrets":
            placeholder = tag.split(":", 1)[1]
            assert any(values.get(k) == placeholder for k in filled), tag


# -- (b) + (c) the real editor: stock save is byte-identical, a one-key change touches one line -------
class FormReader(HTMLParser):
    """The values a browser submits from the editor's form: inputs and textareas named v.KEY."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name") or ""
        if tag == "input" and (name.startswith("v.") or name == "version"):
            self.data[name] = a.get("value") or ""
        elif tag == "textarea" and name.startswith("v."):
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea:
            # what a browser submits: the text minus the one newline that follows the start tag
            value = self.data[self._textarea]
            self.data[self._textarea] = (value[1:] if value.startswith("\n") else value).replace("\n", "\r\n")
            self._textarea = None


def read_form(html: str) -> dict[str, str]:
    reader = FormReader()
    reader.feed(html)
    return reader.data


@pytest.fixture
def editor_client(copied, app_factory):
    stack, workdir = copied
    app = app_factory(stack_dir=workdir)
    app.extensions["stackpilot.store"].set_setting("stack", {"files": stack.files, "profiles": stack.profiles})
    return stack, workdir, sign_in(app, app.test_client(), "admin")


def pick_key(doc: EnvDocument, s: schema_mod.Schema) -> tuple[str, str] | None:
    """A key to change and a new value of the same shape: a plain, non-database, non-Compose setting
    that no other value refers to."""
    referenced = {m for e in doc.variables() for m in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", e.raw_value)}
    for e in doc.variables():
        kind = s.kind(e.key)
        if (
            e.uses_refs
            or e.quote
            or e.problem
            or not e.value
            or e.key in referenced
            or kind.database
            or e.key.startswith("COMPOSE_")
            or kind.name in ("port", "jwt", "path")
            or (s.usage and s.usage.contexts(e.key) - {"url"})
        ):
            continue
        if schema_mod.value_shape(e.value) == "boolean":
            return e.key, "false" if e.value.lower() == "true" else "true"
        if schema_mod.value_shape(e.value) == "number":
            return e.key, str(int(float(e.value)) + 1)
        if re.fullmatch(r"[A-Za-z0-9_.-]+", e.value):
            return e.key, e.value + "x"
    return None


@parametrize_stacks
def test_editor_saves_stock_env_unchanged_then_one_key_touches_one_line(editor_client):
    stack, workdir, client = editor_client
    env = workdir / ".env"
    page = client.get("/config/")
    assert page.status_code == 200
    if not env.is_file():  # no .env in this stack's start: the editor offers to create one, nothing else
        assert "There is no <code>.env</code> yet" in page.get_data(as_text=True)
        r = client.post("/config/create")  # from the example as published (or empty): never refused
        assert r.status_code == 200 and r.headers["HX-Redirect"] == "/config/"
        example = envsave.discover_example(workdir)
        assert env.read_bytes() == (example.read_bytes() if example else b"")
        assert client.get("/config/").status_code == 200
        return
    stock = env.read_bytes()
    form = read_form(page.get_data(as_text=True))
    r = client.post("/config/save", data=form)
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]
    assert "Nothing was saved" not in r.get_data(as_text=True)
    assert env.read_bytes() == stock  # (b) byte for byte
    doc = EnvDocument.parse(stock)
    for key in expect(stack).get("multiline_keys") or ():
        assert "\n" in doc.get(key) and f'name="v.{key}"' in page.get_data(as_text=True)
    _, s = schema_for(stack, workdir, env)
    picked = pick_key(doc, s)
    if picked is None:  # only Compose settings or nothing active: the one change is a new key
        assert limits(stack).get("no_plain_key"), "no plain key to change in this .env"
        picked = ("STACKPILOT_CORPUS_KEY", "1")
    key, value = picked
    form[f"v.{key}"] = value
    r = client.post("/config/save", data=form)
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]
    new = env.read_bytes()
    old_lines = stock.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    if key in doc.keys():
        assert len(new_lines) == len(old_lines)
        differing = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
        assert len(differing) == 1 and key in new_lines[differing[0]], differing  # (c) one line
    else:
        assert new_lines[: len(old_lines) - 1] == old_lines[:-1] and len(new_lines) == len(old_lines) + 1
    saved = EnvDocument.parse(new)
    assert saved.get(key) == value
    for e in doc.variables():  # multi-line values and ${...} references kept exactly as written
        if e.key != key and ("\n" in e.value or e.uses_refs):
            assert saved.entry(e.key).text == e.text


# -- (d) the secret filler changes only secret placeholders ------------------------------------------
@parametrize_stacks
def test_secret_filler_changes_only_secret_placeholders(copied):
    stack, workdir = copied
    for path in env_paths(stack, workdir):
        doc, s = schema_for(stack, workdir, path)
        values = doc.values()
        changes = schema_mod.fill_secrets(values, s)
        for key, new in changes.items():
            old = values.get(key) or ""
            var = s.variable(key)
            assert var.kind.generatable, key
            shape = schema_mod.value_shape(old) if old else ""
            assert shape not in NOT_SECRET_SHAPES, (key, old)
            assert (
                not old
                or schema_mod.is_placeholder(old, key)
                or schema_mod.looks_random(old)
                or (var.example and old == var.example)
                or var.kind.name == "jwt"
            ), (key, old)
            assert not schema_mod.check(key, new, var.kind, {**values, **changes}), (key, var.kind)
        written = EnvDocument.parse(envsave.apply_values(doc, changes))
        for e in doc.variables():  # a value built from others (${DB_PASSWORD} in a URL) keeps its text
            assert written.get(e.key) == changes[e.key] if e.key in changes else written.entry(e.key).text == e.text
        exp = expect(stack)
        assert not set(exp.get("never_generated") or ()) & set(changes)
        assert set(exp.get("generated") or ()) <= set(changes)
        for key in exp.get("unused") or ():
            assert s.variable(key).used is False and not [
                f for _, fs in schema_mod.describe(doc, s) for f in fs if f.key == key and f.findings
            ]


# -- "used by the active profiles" is what Compose itself would start -----------------------------------
@parametrize_stacks
def test_active_services_match_compose(copied):
    stack, workdir = copied
    doc = EnvDocument.load(workdir / ".env")
    s = envsave.build_schema(workdir, stack.files, stack.profiles, doc, None)
    args = [*compose_bin(), "--project-directory", str(workdir), "-p", "spenvcorpus"]
    for f in stack.files:
        args += ["-f", f]
    for p in stack.profiles:
        args += ["--profile", p]
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir)}
    done = subprocess.run(
        [*args, "config", "--services"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        assert limits(stack).get("config_fails"), done.stderr[-2000:]
        return
    listed = set(done.stdout.split())
    profiles = [*stack.profiles, *[p for p in (doc.get("COMPOSE_PROFILES") or "").split(",") if p]]
    assert s.usage.active_services(profiles) == listed
    if expect(stack).get("active_services"):
        assert listed == set(expect(stack)["active_services"])
