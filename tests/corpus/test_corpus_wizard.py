"""The setup wizard over every corpus stack (issues 10 and 19), through its real HTTP views, from a
fresh copy with no .env: claim to Review with no shell edit, no 422 on an empty optional key, the
Review shows the exact writes, the draft changes nothing but secret placeholders (and what the
person entered), the profile choice starts exactly what Compose lists, and the preflight reads
the draft .env instead of showing Compose's error about a file we are about to write.

Per-stack limits and typed values are data (wizard_corpus.yaml, index.yaml), never name tests.
"""

from __future__ import annotations

import html as html_mod
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from app.stack.envfile import EnvDocument
from app.wizard import envdraft
from app.wizard import plan as planning
from app.wizard import recipe as recipes
from app.wizard import state as wizard_state
from tests.conftest import compose_bin
from tests.conftest import sign_in
from tests.corpus import corpus

HERE = Path(__file__).resolve().parent
DATA = yaml.safe_load((HERE / "wizard_corpus.yaml").read_text(encoding="utf-8"))
ENV_DATA = yaml.safe_load((HERE / "env_corpus.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Case:
    """One stack to drive: a corpus entry, a derived copy of one, or a fixture beside the tests."""

    stack: corpus.CorpusStack
    name: str
    env: dict  # lines set in a .env written from the example before the wizard starts
    expect: dict
    source: Path

    def copy_to(self, target: Path) -> Path:
        shutil.copytree(self.source, target, symlinks=True)
        workdir = target / self.stack.workdir if self.stack.workdir else target
        if self.env:
            doc = EnvDocument.parse((workdir / self.stack.env_example).read_bytes(), exists=False)
            text = doc.text()
            for key, value in self.env.items():  # uncomment or add the documented line
                text, n = re.subn(rf"(?m)^#\s*{key}=.*$", f"{key}={value}", text)
                if not n:
                    text += f"{key}={value}\n"
            (workdir / ".env").write_text(text)
        return workdir

    @property
    def limits(self) -> dict:
        return (DATA.get("stacks") or {}).get(self.name) or {}


def cases() -> list:
    out = []
    for param in corpus.params():
        stack = param.values[0]
        if stack is None:
            out.append(param)
            continue
        out.append(pytest.param(Case(stack, stack.name, {}, {}, stack.source), id=stack.name))
    by_name = {s.name: s for s in corpus.STACKS}
    for d in DATA.get("derived") or ():
        base = by_name[d["from"]]
        out.append(
            pytest.param(Case(base, d["name"], d.get("env") or {}, d.get("expect") or {}, base.source), id=d["name"])
        )
    if DATA.get("use_env_fixtures"):
        for e in ENV_DATA.get("extra_stacks") or ():
            stack = corpus.CorpusStack(e["name"], e)
            out.append(
                pytest.param(
                    Case(stack, e["name"], {}, {"profiles": e.get("expect", {}).get("profiles")}, HERE / e["dir"]),
                    id=e["name"],
                )
            )
    return out


def chosen_files(case: Case, workdir: Path) -> list[str]:
    return list(case.limits.get("files") or [f for f in case.stack.files if (workdir / f).is_file()])


def services_compose_lists(workdir: Path, env: bytes, files: list[str], profiles: list[str], tmp: Path) -> set[str]:
    """`docker compose --profile ... config --services` on a copy holding the draft as its .env."""
    copy = tmp / "compose-view" / workdir.name
    shutil.copytree(workdir, copy, symlinks=True)
    (copy / ".env").write_bytes(env)
    args = [*compose_bin(), "--project-directory", str(copy), "-p", "corpusview"]
    for f in files:
        args += ["-f", str(copy / f)]
    for p in profiles:
        args += ["--profile", p]
    done = subprocess.run(
        [*args, "config", "--services"],
        capture_output=True,
        text=True,
        cwd=copy,
        timeout=60,
        env={"PATH": str(Path(compose_bin()[0]).parent) + ":/usr/bin:/bin", "HOME": str(tmp)},
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("case", cases())
def test_wizard_from_claim_to_review(case, tmp_path, app_factory):
    if case is None:
        corpus.require(None)
    workdir = case.copy_to(tmp_path / case.name)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    app = app_factory(stack_dir=workdir)
    store = app.extensions["stackpilot.store"]
    c = sign_in(app, app.test_client(), "admin")

    # Checks: the compose files are read with the draft .env, never an opaque error for a missing .env.
    checks = c.get("/setup/preflight/checks").get_data(as_text=True)
    files_row = checks[checks.index('id="check-files"') :]
    files_row = files_row[: files_row.index("</li>")]
    assert "env file" not in files_row and "not found" not in files_row, files_row
    assert 'class="primary" disabled' not in checks, re.findall(r"check-fail.*?<p>(.*?)</p>", checks, re.S)
    assert c.post("/setup/preflight").status_code == 302

    # Stack: every compose file of the folder offered, profiles preset from COMPOSE_PROFILES.
    page = c.get("/setup/stack")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    files = chosen_files(case, workdir)
    for f in files:
        assert f'value="{f}"' in html, f
    preset = case.expect.get("profiles") or case.limits.get("preset_profiles") or []
    for p in preset:  # from COMPOSE_PROFILES in the .env
        assert re.search(rf'name="(?:profile|group_\d+)" value="{re.escape(p)}" checked', html), p
    wanted = sorted(set(preset) | set(case.stack.profiles))  # and what the stack's docs start
    proposed = re.search(r'id="project" name="project" value="([^"]*)"', html).group(1)
    # Compose's own name (index.yaml: `name:` or COMPOSE_PROJECT_NAME), else the folder's
    assert proposed == (case.stack.entry.get("project_name") or re.sub(r"[^a-z0-9_-]", "", workdir.name.lower()))
    form = {
        "project": proposed,
        "file": files,
        "profile": wanted,
    }
    form.update({f"pos_{f}": str(i + 1) for i, f in enumerate(files)})
    groups = re.findall(r"<legend>One of ([^<]+)</legend>", html)
    if groups:  # mutually exclusive profiles (one container_name): two of them are refused
        pair = [g.strip() for g in groups[0].split(",")][:2]
        refused = c.post("/setup/stack", data={**form, "profile": pair})
        assert refused.status_code == 422 and "cannot run together" in refused.get_data(as_text=True)
    r = c.post("/setup/stack", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    state = wizard_state.load(store)
    assert state.stack["files"] == files and sorted(state.stack["profiles"]) == sorted(wanted)

    # Configuration: generate, then Continue with only the required fields filled.
    config = c.get("/setup/config")
    assert config.status_code == 200
    config_html = config.get_data(as_text=True)
    assert c.post("/setup/config/generate").status_code == 302
    state = wizard_state.load(store)
    recipe = recipes.for_stack(workdir, state.stack.get("recipe"))
    with app.app_context():
        stack = planning.stack_for(workdir, state, recipe)
        draft = envdraft.load(workdir, recipe, stack.files, stack.profiles)
        variables = envdraft.variables(draft, recipe, planning.decided_env(state, recipe, draft))
    for v in variables:  # every variable the stack needs: a field, or a generator that filled it
        if v.asks:
            assert f'name="var_{v.key}"' in config_html, v.key
        if v.required:
            assert v.asks or v.key in state.generated or v.value, v.key
        if v.kind.secret and not v.kind.generatable and not v.kind.derived:
            assert f'name="var_{v.key}"' in config_html, v.key  # a third-party key: typed, may stay empty
    typed = {f"var_{k}": v for k, v in (case.limits.get("typed") or {}).items()}
    # the form as the browser sends it: every field with what it shows, then what the person typed
    page_fields = {
        m.group(1): html_mod.unescape(m.group(2))
        for m in re.finditer(
            r'<input id="var-[^"]*" name="(var_[^"]+)" value="([^"]*)"', c.get("/setup/config").get_data(as_text=True)
        )
    }
    r = c.post("/setup/config", data={**page_fields, **typed})
    assert r.status_code == 302, re.findall(r'class="form-error"[^>]*>([^<]*)', r.get_data(as_text=True))
    assert c.post("/setup/https", data={"mode": "private"}).status_code == 302

    # Review: every write shown; the draft changes only generated secrets and what was typed.
    review = c.get("/setup/review")
    assert review.status_code == 200
    text = review.get_data(as_text=True)
    state = wizard_state.load(store)
    recipe = recipes.for_stack(workdir, state.stack.get("recipe"))
    with app.app_context():
        plan = planning.build(workdir, state, recipe)
    for w in plan.writes:
        assert f"<code>{w.key}</code>" in text, w.key
        assert w.why in ("generated", "entered", "profiles"), (w.key, w.why)
        if w.why == "entered":
            assert f"var_{w.key}" in typed, w.key
        if w.why == "profiles":  # only a real change of the set of profiles, never a reordering
            assert set((w.before or "").split(",")) != set(w.after.split(",")), (w.before, w.after)
    base = EnvDocument.parse(plan.env_bytes)
    start = (
        EnvDocument.load(workdir / ".env")
        if (workdir / ".env").is_file()
        else (EnvDocument.load(workdir / recipe.env_example))
    )

    def raw(doc, key):
        entry = doc.entry(key)
        return entry.raw_value if entry is not None else None

    changed = {k for k in base.keys() if raw(base, k) != raw(start, k)}
    assert changed == {w.key for w in plan.writes}, changed ^ {w.key for w in plan.writes}
    assert set(state.generated) >= {w.key for w in plan.writes if w.why == "generated"}
    # ... and nothing was written to the stack folder before the launch.
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before

    # The profile choice starts exactly the services Compose lists for it.
    expected = services_compose_lists(
        workdir, plan.env_bytes, list(plan.stack.files), list(plan.stack.profiles), tmp_path
    )
    shown = set(re.findall(r"adds ([^<]*)</span>", html))
    offered = {s.strip() for line in shown for s in line.split(",")} - {"no service"}
    with app.app_context():
        from app.wizard import steps

        choice = steps.profile_choice(app.extensions["stackpilot.runners"], plan.stack, plan.env_bytes)
    every = {n for o in choice.options for n in o.services}
    assert offered <= every
    mine = {n for n in _no_profile_services(app.extensions["stackpilot.runners"], plan.stack, plan.env_bytes)} | {
        n for o in choice.options if o.name in plan.stack.profiles for n in o.services
    }
    assert mine == expected, mine ^ expected


def _no_profile_services(runners, stack, env_bytes) -> set[str]:
    from app.wizard import steps

    model, _approx = steps.profile_model(runners, stack, env_bytes)
    return {s.name for s in model.services.values() if not s.profiles}
