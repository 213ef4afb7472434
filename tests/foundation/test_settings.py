import os
import stat
import subprocess
import sys

import pytest

from app import ROOT
from app.errors import SettingsError
from app.settings import from_env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STACKPILOT_PORT": "nine"}, "STACKPILOT_PORT must be a whole number"),
        ({"STACKPILOT_PORT": "70000"}, "STACKPILOT_PORT must be between 1 and 65535"),
        ({"STACKPILOT_STACK_DIR": "/no/such/stack"}, "STACKPILOT_STACK_DIR '/no/such/stack' is not a folder"),
        ({"STACKPILOT_THREADS": "2"}, "STACKPILOT_THREADS must be between 8"),
        ({"STACKPILOT_TRUSTED_PROXIES": "caddy proxy"}, "is not an IP address, network or host name"),
        ({"STACKPILOT_ALLOWED_HOSTS": "a b"}, "STACKPILOT_ALLOWED_HOSTS"),
        ({"STACKPILOT_RESERVED_THREADS": "95"}, "STACKPILOT_RESERVED_THREADS must be between"),
        ({"MANAGEMENT_SECRET_KEY": "short"}, "MANAGEMENT_SECRET_KEY must be at least 32"),
        ({"STACKPILOT_ADMIN_PASSWORD_FILE": "/no/file"}, "is not a readable file"),
    ],
)
def test_bad_setting_is_named(tmp_path, env, message):
    with pytest.raises(SettingsError) as err:
        from_env({"STACKPILOT_DATA_DIR": str(tmp_path), **env})
    assert message in err.value.message


def test_defaults(tmp_path):
    s = from_env({"STACKPILOT_DATA_DIR": str(tmp_path)})
    assert (s.host, s.port, s.stack_dir) == ("0.0.0.0", 9000, None)
    assert s.threads >= 64


def test_secret_key_generated_once_with_mode_0600(tmp_path):
    first = from_env({"STACKPILOT_DATA_DIR": str(tmp_path)}).secret_key
    second = from_env({"STACKPILOT_DATA_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 48
    assert stat.S_IMODE(os.stat(tmp_path / "secret-key").st_mode) == 0o600


def test_given_secret_key_wins_and_nothing_is_written(tmp_path):
    key = "k" * 40
    assert from_env({"STACKPILOT_DATA_DIR": str(tmp_path), "MANAGEMENT_SECRET_KEY": key}).secret_key == key
    assert not (tmp_path / "secret-key").exists()


@pytest.mark.parametrize("port", ["abc", "0"])
def test_server_refuses_bad_port_with_one_line(tmp_path, port):
    env = {**os.environ, "STACKPILOT_DATA_DIR": str(tmp_path), "STACKPILOT_PORT": port}
    proc = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stackpilot: STACKPILOT_PORT"), proc.stderr
    assert "Traceback" not in proc.stderr
