"""The writer against the REAL Compose: what a person types is what Compose reads, and no value
can smuggle in another variable."""

from __future__ import annotations

import json
import subprocess

from app.stack.envfile import EnvDocument
from app.stack.envfile import encode_value
from tests.config.hostile import hostile_values
from tests.conftest import compose_bin

BATCH = 200


def compose_view(tmp_path, values: list[str]) -> tuple[dict, dict, str]:
    """Write values as SPV0..SPVn with our writer and return Compose's view of them, once through
    interpolation (`environment: ${X}`) and once as an env_file (which shows every variable)."""
    names = [f"SPV{i}" for i in range(len(values))]
    doc = EnvDocument.parse(b"# hostile corpus\n")
    for name, value in zip(names, values, strict=True):
        doc.set(name, value)
    (tmp_path / ".env").write_bytes(doc.to_bytes())
    env_lines = "\n".join(f"      {n}: ${{{n}}}" for n in names)
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  interp:\n    image: none\n    environment:\n" + env_lines + "\n"
        "  envfile:\n    image: none\n    env_file: [.env]\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SPV")}
    run = subprocess.run(
        [*compose_bin(), "--project-directory", str(tmp_path), "-p", "sproundtrip", "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr + doc.text()
    model = json.loads(run.stdout)
    unescape = lambda d: {k: (v.replace("$$", "$") if v is not None else v) for k, v in d.items()}  # noqa: E731
    return (
        unescape(model["services"]["interp"]["environment"]),
        unescape(model["services"]["envfile"]["environment"]),
        doc.text(),
    )


def test_hostile_values_read_back_exactly_through_compose(tmp_path):
    values = [v for v in hostile_values(400) if "\x00" not in v]
    assert len(values) >= 300
    for start in range(0, len(values), BATCH):
        chunk = values[start : start + BATCH]
        interp, envfile, text = compose_view(tmp_path, chunk)
        expected = {f"SPV{i}": v for i, v in enumerate(chunk)}
        wrong = {k: (expected[k], interp.get(k)) for k in expected if interp.get(k) != expected[k]}
        assert not wrong, f"interpolated values differ: {list(wrong.items())[:5]}"
        wrong = {k: (expected[k], envfile.get(k)) for k in expected if envfile.get(k) != expected[k]}
        assert not wrong, f"env_file values differ: {list(wrong.items())[:5]}"
        assert set(envfile) == set(expected), f"extra variables appeared: {set(envfile) - set(expected)}"


def test_every_written_value_is_one_line():
    for value in hostile_values(400):
        assert "\n" not in encode_value(value) and "\r" not in encode_value(value)


def test_our_reader_agrees_with_our_writer():
    values = hostile_values(400)
    doc = EnvDocument.parse(b"")
    for i, v in enumerate(values):
        doc.set(f"K{i}", v)
    again = EnvDocument.parse(doc.to_bytes())
    assert again.values() == {f"K{i}": v for i, v in enumerate(values)}
    assert not again.problems()
