"""Fixtures of the polish tests: the many-stacks root (one busybox service per stack)."""

from tests.stacks.conftest import stacks_root  # noqa: F401
