"""What the wizard knows about a stack: the shipped recipe for known stacks (app.stack.recipes,
owned by the configuration area), or generic inference for any other compose folder.

The wizard's `Recipe` is a view of the shared one with what the wizard needs precomputed: the
hardware each profile needs, a label per hostname, which plain variables a person must decide,
and the preparation steps as typed objects (the git URL a person may change).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from app.stack import default_files
from app.stack import normalize_project_name
from app.stack import recipes as shared
from app.stack.envsave import EXAMPLE_NAMES
from app.stack.schema import Kind


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
    hex_bytes: int = 32  # template: size of the fresh key
    source_name: str = ""  # the key of the editable URL in the wizard's stack step


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    project: str
    files: tuple[str, ...]
    overrides: dict[str, str] = field(default_factory=dict)  # variant -> file
    default_override: str = ""
    profiles: dict[str, str] = field(default_factory=dict)  # profile -> need ("", "nvidia", "amd")
    default_profile: str = ""
    env_example: str = ".env.example"
    env_copies: tuple[str, ...] = ()
    kinds: dict[str, Kind] = field(default_factory=dict)  # the recipe's kind overrides
    hostnames: dict[str, str] = field(default_factory=dict)  # KEY -> what it serves
    email_key: str = ""
    asked: dict[str, str] = field(default_factory=dict)  # KEY -> why a person decides it
    prepare: tuple[PrepareStep, ...] = ()
    min_ram_gib: float = 0
    notes: dict[str, str] = field(default_factory=dict)  # KEY -> warning shown next to it


EMPTY = Recipe(name="", title="No stack folder", project="stack", files=())
_LABELS = {"WEBUI": "Open WebUI", "N8N": "n8n", "SEARXNG": "SearXNG", "NEO4J": "Neo4j"}
_ASKED = re.compile(r"(USER|USERNAME|_LOGIN)$")


def _need(profile: str) -> str:
    """The hardware a profile needs, read from its name (gpu-nvidia, cuda, gpu-amd, rocm)."""
    p = profile.lower()
    if "nvidia" in p or "cuda" in p:
        return "nvidia"
    if "amd" in p or "rocm" in p:
        return "amd"
    return ""


def _label(key: str) -> str:
    stem = re.sub(r"_HOSTNAME$", "", key)
    return _LABELS.get(stem, stem.replace("_", " ").title())


def _step(step: shared.PrepareStep) -> PrepareStep | None:
    o = step.options
    if step.action == "git_sparse":
        paths = list(o.get("paths") or [])
        return PrepareStep(
            kind="git",
            title=step.title,
            dest=o.get("target", step.id),
            url=o.get("repo", ""),
            ref=o.get("ref", ""),
            sparse=paths[0] if paths else "",
            source_name=step.id,
        )
    if step.action == "secret_template":
        generate = o.get("generate") or {}
        return PrepareStep(
            kind="template",
            title=step.title,
            dest=o["target"],
            source=o["source"],
            replace=o.get("placeholder", ""),
            hex_bytes=int(generate.get("bytes", 32)),
        )
    return None


def from_shared(r: shared.Recipe) -> Recipe:
    """The wizard's view of a shipped recipe."""
    asked = {
        k: f"A name you choose ({kind.label})"
        for k, kind in r.kinds.items()
        if kind.name == "text" and _ASKED.search(k)
    }
    if "DASHBOARD_USERNAME" in asked:
        asked["DASHBOARD_USERNAME"] = "The name you sign in to the Supabase dashboard with"
    return Recipe(
        name=r.name,
        title=r.title,
        project=r.project,
        files=r.compose_files,
        overrides=dict(r.overrides),
        default_override=r.default_override,
        profiles={p: _need(p) for p in r.profiles},
        default_profile=next((p for p in r.profiles if not _need(p)), ""),
        env_copies=r.env_copies,
        kinds=dict(r.kinds),
        hostnames={k: _label(k) for k in r.hostnames},
        email_key=r.email,
        asked=asked,
        prepare=tuple(s for s in map(_step, r.prepare) if s is not None),
        min_ram_gib=r.min_ram_gib,
        notes=dict(r.notes),
    )


def detect(directory: Path) -> Recipe | None:
    """The shipped recipe whose match rules fit the folder."""
    found = shared.detect(directory)
    return from_shared(found) if found else None


def by_name(name: str) -> Recipe | None:
    try:
        return from_shared(shared.load(name))
    except KeyError:
        return None


# -- generic inference for any compose stack ---------------------------------------------------
_DECLARED = re.compile(r"(?m)^\s*#?\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_ACME_EMAIL = re.compile(r"(LETSENCRYPT|ACME|^LE_|CERTBOT|SSL|TLS)\w*EMAIL")
OVERRIDE_RE = re.compile(r"^(?:docker-)?compose\.override\.([\w-]+)\.ya?ml$")


def find_example(directory: Path) -> str:
    """The stack's env example, whatever its publisher named it (".env.example" when none)."""
    return next((n for n in EXAMPLE_NAMES if (directory / n).is_file()), EXAMPLE_NAMES[0])


def generic(directory: Path) -> Recipe:
    """A recipe inferred from the folder: default compose file, override variants, and the
    hostnames and e-mail declared (even commented out) in .env.example."""
    files = default_files(directory)
    overrides = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if m := OVERRIDE_RE.match(path.name):
            overrides[m.group(1)] = path.name
    example = find_example(directory)
    try:
        declared = list(dict.fromkeys(_DECLARED.findall((directory / example).read_text(errors="replace"))))
    except OSError:
        declared = []
    hostnames = {k: _label(k) for k in declared if k.endswith("_HOSTNAME") and k != "MANAGEMENT_HOSTNAME"}
    # Only an ACME e-mail is the HTTPS step's: ENABLE_EMAIL_SIGNUP or SMTP_ADMIN_EMAIL are not.
    email = next((k for k in declared if _ACME_EMAIL.search(k)), "")
    return Recipe(
        name="",
        title="Any Compose stack",
        project=normalize_project_name(directory.name),
        files=files,
        overrides=overrides,
        hostnames=hostnames,
        email_key=email,
        env_example=example,
    )


def for_stack(directory: Path, name: str | None = None) -> Recipe:
    """The recipe to use for directory: the named one, else the detected one, else inference."""
    return (by_name(name) if name else None) or detect(directory) or generic(directory)
