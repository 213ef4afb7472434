"""Stack recipes: small YAML files (one per known stack) with the facts Stackpilot cannot infer.

Schema of a recipe file (`<name>.yaml` in this folder; every key but `name` optional):

    name: str                 # the recipe id (equals the file name without .yaml)
    title: str                # shown to people
    source: str               # where the stack comes from
    match:                    # how a stack folder is recognised (all listed must be present)
      files: [str]            #   paths relative to the stack folder
      env_keys: [str]         #   keys declared in .env.example (or .env)
    project: str              # the Compose project name (`-p`)
    compose_files: [str]      # base compose files, in order
    overrides: {id: file}     # alternative override files, e.g. private / public
    default_override: str     # the id chosen unless the person picks another
    profiles: [str]           # Compose profiles offered (one is chosen)
    env_copies: [str]         # copies of .env kept byte-identical on every save
    start_chain: [str]        # services that must be healthy first, in order
    min_ram_gib: int          # warn below this
    prepare:                  # steps the setup wizard runs visibly before launch
      - id: str
        title: str
        action: git_sparse    #   fetch `paths` of `repo` at `ref` into `target`
        repo: str
        ref: str
        paths: [str]
        target: str
      - id: str
        title: str
        action: secret_template   # copy `source` to `target`, replacing `placeholder` by a
        source: str               # freshly generated secret (`generate` is a kind spec);
        target: str               # `only_if_missing` keeps an existing target
        placeholder: str
        generate: {kind: hex, bytes: 32}
        only_if_missing: bool
    hostnames: [str]          # variables holding public host names (HTTPS step)
    email: str                # the Let's Encrypt e-mail variable
    variables:                # kind overrides: KEY: {kind, bytes, length, min_length, forbid,
      KEY: {kind: ...}        #   signed_by, role, differs_from, database, allow, generate, user, note}

Kinds: secret, password, hex, length, jwt, userpass, hostname, email, url, port, boolean, text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import yaml

from app.stack.schema import Kind
from app.stack.schema import kind_from_recipe

HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class PrepareStep:
    id: str
    title: str
    action: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str = ""
    source: str = ""
    match_files: tuple[str, ...] = ()
    match_env_keys: tuple[str, ...] = ()
    project: str = ""
    compose_files: tuple[str, ...] = ()
    overrides: dict = field(default_factory=dict)
    default_override: str = ""
    profiles: tuple[str, ...] = ()
    env_copies: tuple[str, ...] = ()
    start_chain: tuple[str, ...] = ()
    min_ram_gib: int = 0
    prepare: tuple[PrepareStep, ...] = ()
    hostnames: tuple[str, ...] = ()
    email: str = ""
    kinds: dict[str, Kind] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def matches(self, stack_dir: Path) -> bool:
        """All match files exist and all match keys are declared in .env.example or .env."""
        if not self.match_files and not self.match_env_keys:
            return False
        if not all((stack_dir / f).exists() for f in self.match_files):
            return False
        text = ""
        for name in (".env.example", ".env"):
            try:
                text += (stack_dir / name).read_text(errors="replace")
            except OSError:
                pass
        return all(re.search(rf"(?m)^\s*#?\s*(?:export\s+)?{re.escape(k)}\s*=", text) for k in self.match_env_keys)


def _from_dict(data: dict) -> Recipe:
    variables = data.get("variables") or {}
    steps = tuple(
        PrepareStep(
            s["id"],
            s.get("title", s["id"]),
            s["action"],
            {k: v for k, v in s.items() if k not in ("id", "title", "action")},
        )
        for s in data.get("prepare") or ()
    )
    match = data.get("match") or {}
    return Recipe(
        name=data["name"],
        title=data.get("title", data["name"]),
        source=data.get("source", ""),
        match_files=tuple(match.get("files", ())),
        match_env_keys=tuple(match.get("env_keys", ())),
        project=data.get("project", ""),
        compose_files=tuple(data.get("compose_files", ())),
        overrides=dict(data.get("overrides") or {}),
        default_override=data.get("default_override", ""),
        profiles=tuple(data.get("profiles", ())),
        env_copies=tuple(data.get("env_copies", ())),
        start_chain=tuple(data.get("start_chain", ())),
        min_ram_gib=int(data.get("min_ram_gib", 0)),
        prepare=steps,
        hostnames=tuple(data.get("hostnames", ())),
        email=data.get("email", ""),
        kinds={k: kind_from_recipe(v) for k, v in variables.items()},
        notes={k: v["note"] for k, v in variables.items() if v.get("note")},
    )


@functools.cache
def load(name: str) -> Recipe:
    """The recipe shipped as <name>.yaml; KeyError when there is none."""
    if not _NAME.fullmatch(name):
        raise KeyError(name)
    path = HERE / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(name)
    return _from_dict(yaml.safe_load(path.read_text()))


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def detect(stack_dir: Path | None) -> Recipe | None:
    """The first shipped recipe whose match rules fit the folder."""
    if stack_dir is None:
        return None
    for name in names():
        recipe = load(name)
        if recipe.matches(Path(stack_dir)):
            return recipe
    return None
