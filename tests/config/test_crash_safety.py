"""A writer killed with SIGKILL at random points leaves the old or the new file, never a mix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from app import ROOT
from tests.support.live import wait_for

WRITER = """
import sys
from pathlib import Path
from app.stack.atomic import atomic_write
path = Path(sys.argv[1])
a, b = Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()
print("ready", flush=True)
i = 0
while True:
    atomic_write(path, b if i % 2 else a)
    i += 1
"""


def test_sigkill_never_leaves_a_partial_file(tmp_path):
    old = b"".join(f"OLD_{i}=value-{i}-{'x' * 200}\n".encode() for i in range(400))
    new = b"".join(f"NEW_{i}='other {i}'\n".encode() for i in range(900))
    (tmp_path / "a").write_bytes(old)
    (tmp_path / "b").write_bytes(new)
    target = tmp_path / ".env"
    target.write_bytes(old)
    rng = random.Random(7)
    for _ in range(25):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(tmp_path / "a"), str(tmp_path / "b")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.05))  # a random point inside the write loop, not a wait
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda p=proc: p.poll() is not None, timeout=10, message="writer to die")
        proc.stdout.close()
        assert target.read_bytes() in (old, new)
    temps = [p for p in tmp_path.iterdir() if "stackpilot-tmp" in p.name]
    assert len(temps) <= 25  # leftovers of killed writers are only ever temp files, cleaned later
