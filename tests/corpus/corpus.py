"""The real-stack corpus (../shared/corpus): its index and fresh copies of each stack.

Tests over the corpus are parametrized from index.yaml, so a new entry is picked up without code
changes. Per-stack limits of this machine (what a stack cannot do here) belong in index.yaml-driven
parameters (see `expectations`), never in test code.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(os.environ.get("STACKPILOT_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus")


@dataclass(frozen=True)
class CorpusStack:
    """One published stack: where its files are, how its docs start it."""

    name: str
    entry: dict

    @property
    def source(self) -> Path:
        return ROOT / self.name

    @property
    def workdir(self) -> str:
        """The folder Compose runs in, relative to the stack's root ("" for the root)."""
        return (self.entry.get("start") or {}).get("workdir") or ""

    @property
    def files(self) -> list[str]:
        """The documented compose files, relative to the workdir."""
        return list((self.entry.get("start") or {}).get("files") or [])

    @property
    def profiles(self) -> list[str]:
        return list((self.entry.get("start") or {}).get("profiles") or [])

    @property
    def copies(self) -> list[dict]:
        """The copies the stack's own instructions ask for before config (e.g. .env.example -> .env)."""
        return list((self.entry.get("start") or {}).get("copy") or [])

    @property
    def env_example(self) -> str | None:
        """The env example's path relative to the workdir, or None."""
        example = self.entry.get("env_example")
        if not example:
            return None
        return os.path.relpath(example, self.workdir or ".")

    def copy_to(self, target: Path, *, with_copies: bool = False) -> Path:
        """A fresh copy of the stack under target; returns the workdir. No .env is made unless asked."""
        shutil.copytree(self.source, target, symlinks=True)
        workdir = target / self.workdir if self.workdir else target
        if with_copies:
            for step in self.copies:
                shutil.copyfile(workdir / step["from"], workdir / step["to"])
        return workdir


def load_index() -> list[CorpusStack]:
    if not (ROOT / "index.yaml").is_file():
        return []
    data = yaml.safe_load((ROOT / "index.yaml").read_text(encoding="utf-8"))
    return [CorpusStack(name=s["name"], entry=s) for s in data.get("stacks") or []]


STACKS = load_index()


def params() -> list:
    """pytest parameters, one per corpus stack, id = the stack's name. An empty corpus is a failure,
    not a silent pass: the param list then holds one entry that fails."""
    if not STACKS:
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(s, id=s.name) for s in STACKS]


def require(stack: CorpusStack | None) -> CorpusStack:
    if stack is None:
        pytest.fail(f"the corpus is missing: no index.yaml under {ROOT}")
    return stack
