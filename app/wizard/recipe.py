"""What the wizard knows about a stack: a recipe for known stacks, generic inference for others.

A recipe names the project, the compose files, the override variants (private/public), the
profiles and what hardware each needs, the variable kinds (which secrets to generate and how),
the hostnames and e-mail a person must decide, the copies of .env the stack expects, and the
preparation steps (fetch a compose folder from git, make a settings file from a template).

ADAPTER: the configuration area owns the recipe files (app/stack/recipes/) and the variable
kinds (app/stack/schema.py). Until they land, the local-ai-packaged facts live here; `for_stack`
is the one entry point, so switching to the shared loader changes only this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import yaml

from app.stack import default_files
from app.stack import normalize_project_name
from app.stack import secrets as gen


@dataclass(frozen=True)
class PrepareStep:
    """One visible preparation step run at launch, before Compose."""

    kind: str  # "git" (sparse clone or update of a folder) | "template" (copy with a fresh secret)
    title: str
    dest: str  # relative to the stack folder
    url: str = ""  # git: the default remote; a person may change it (mirror, fork, local copy)
    ref: str = ""
    sparse: str = ""  # git: the only folder checked out
    source: str = ""  # template: the file copied
    replace: str = ""  # template: the placeholder replaced by a fresh hex key
    source_name: str = ""  # the key of the editable URL in the wizard's stack step


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    project: str
    files: tuple[str, ...]
    overrides: dict[str, str] = field(default_factory=dict)  # variant -> file
    profiles: dict[str, str] = field(default_factory=dict)  # profile -> need ("", "nvidia", "amd")
    default_profile: str = ""
    env_example: str = ".env.example"
    env_copies: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)  # KEY -> kind spec (see generate)
    hostnames: dict[str, str] = field(default_factory=dict)  # KEY -> what it serves
    email_key: str = ""
    asked: dict[str, str] = field(default_factory=dict)  # KEY -> why a person decides it
    prepare: tuple[PrepareStep, ...] = ()
    min_ram_gib: float = 0
    notes: dict[str, str] = field(default_factory=dict)  # KEY -> warning shown next to it


LOCAL_AI = Recipe(
    name="local-ai-packaged",
    title="Local AI Packaged (n8n, Open WebUI, Ollama, Supabase, Flowise, Langfuse, SearXNG, Neo4j)",
    project="localai",
    files=("docker-compose.yml",),
    overrides={"private": "docker-compose.override.private.yml", "public": "docker-compose.override.public.yml"},
    profiles={"cpu": "", "gpu-nvidia": "nvidia", "gpu-amd": "amd"},
    default_profile="cpu",
    env_copies=("supabase/docker/.env",),
    kinds={
        "N8N_ENCRYPTION_KEY": "hex:32",
        "N8N_USER_MANAGEMENT_JWT_SECRET": "hex:32",
        "POSTGRES_PASSWORD": "password:32",
        "JWT_SECRET": "password:48",
        "ANON_KEY": "jwt:anon",
        "SERVICE_ROLE_KEY": "jwt:service_role",
        "DASHBOARD_PASSWORD": "password:24",
        "SECRET_KEY_BASE": "length:64",
        "VAULT_ENC_KEY": "length:32",
        "LOGFLARE_PUBLIC_ACCESS_TOKEN": "password:40",
        "LOGFLARE_PRIVATE_ACCESS_TOKEN": "password:40",
        "NEO4J_AUTH": "userpass:neo4j",
        "CLICKHOUSE_PASSWORD": "password:32",
        "MINIO_ROOT_PASSWORD": "password:32",
        "LANGFUSE_SALT": "password:32",
        "NEXTAUTH_SECRET": "password:32",
        "ENCRYPTION_KEY": "hex:32",
    },
    hostnames={
        "N8N_HOSTNAME": "n8n", "WEBUI_HOSTNAME": "Open WebUI", "FLOWISE_HOSTNAME": "Flowise",
        "SUPABASE_HOSTNAME": "Supabase", "LANGFUSE_HOSTNAME": "Langfuse", "OLLAMA_HOSTNAME": "Ollama",
        "SEARXNG_HOSTNAME": "SearXNG", "NEO4J_HOSTNAME": "Neo4j",
    },
    email_key="LETSENCRYPT_EMAIL",
    asked={"DASHBOARD_USERNAME": "The name you sign in to the Supabase dashboard with"},
    prepare=(
        PrepareStep(kind="git", title="Fetch Supabase's compose folder", dest="supabase",
                    url="https://github.com/supabase/supabase.git", ref="master", sparse="docker",
                    source_name="supabase"),
        PrepareStep(kind="template", title="Make searxng/settings.yml with a fresh secret key",
                    dest="searxng/settings.yml", source="searxng/settings-base.yml", replace="ultrasecretkey"),
    ),
    min_ram_gib=8,
    notes={"POSTGRES_PASSWORD": "Shared by three services. Once the database exists, changing it here "
                                "breaks their sign-in (the database keeps the old one)."},
)
RECIPES = (LOCAL_AI,)
EMPTY = Recipe(name="", title="No stack folder", project="stack", files=())


def detect(directory: Path) -> Recipe | None:
    """The recipe whose layout the folder has (its override files and the .env example)."""
    for recipe in RECIPES:
        marks = [*recipe.files, *recipe.overrides.values(), recipe.env_example]
        if all((directory / m).is_file() for m in marks):
            return recipe
    return None


def by_name(name: str) -> Recipe | None:
    return next((r for r in RECIPES if r.name == name), None)


# -- generic inference for any compose stack ---------------------------------------------------
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|_KEY$|TOKEN|SALT)")
_HOST_NAME = re.compile(r"_HOSTNAME$|_HOST_NAME$|_DOMAIN$")
_EMAIL_NAME = re.compile(r"EMAIL")
OVERRIDE_RE = re.compile(r"^(?:docker-)?compose\.override\.([\w-]+)\.ya?ml$")


def generic(directory: Path) -> Recipe:
    """A recipe inferred from the folder: default compose file, override variants, name-based kinds."""
    files = default_files(directory)
    overrides = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if m := OVERRIDE_RE.match(path.name):
            overrides[m.group(1)] = path.name
    return Recipe(name="", title="Any Compose stack", project=normalize_project_name(directory.name),
                  files=files, overrides=overrides)


def for_stack(directory: Path, name: str | None = None) -> Recipe:
    """The recipe to use for directory: the named one, else the detected one, else inference."""
    return (by_name(name) if name else None) or detect(directory) or generic(directory)


def kind_of(recipe: Recipe, key: str) -> str:
    """A variable's kind: the recipe's word, else guessed from its name."""
    if key in recipe.kinds:
        return recipe.kinds[key]
    if key in recipe.hostnames or _HOST_NAME.search(key):
        return "hostname"
    if key == recipe.email_key or _EMAIL_NAME.search(key):
        return "email"
    if _SECRET_NAME.search(key):
        return "password:32"
    return "text"


def is_secret(kind: str) -> bool:
    return kind.split(":")[0] in ("hex", "password", "length", "jwt", "userpass")


def generate(kind: str, values: dict[str, str]) -> str:
    """A fresh value of a secret kind; JWTs are signed with JWT_SECRET from values."""
    base, _, arg = kind.partition(":")
    if base == "hex":
        return gen.hex_key(int(arg or 32))
    if base in ("password", "length"):
        return gen.password(int(arg or 32))
    if base == "jwt":
        return gen.supabase_key(arg, values["JWT_SECRET"])
    if base == "userpass":
        return f"{arg or 'user'}/{gen.password(32)}"
    raise ValueError(f"{kind} is not a secret kind")


def profiles_in_files(directory: Path, files: tuple[str, ...]) -> list[str]:
    """Profiles named in the compose files (and their include targets that exist), in file order.
    Read from YAML because `compose config` cannot run before the recipe fetched included files."""
    seen: list[str] = []
    queue = [directory / f for f in files]
    visited = set()
    while queue:
        path = queue.pop(0)
        if path in visited or not path.is_file():
            continue
        visited.add(path)
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for spec in (doc.get("services") or {}).values():
            for p in (spec or {}).get("profiles") or []:
                if p not in seen:
                    seen.append(str(p))
        for inc in doc.get("include") or []:
            target = inc if isinstance(inc, str) else (inc or {}).get("path")
            if isinstance(target, str):
                queue.append((path.parent / target).resolve())
    return seen
