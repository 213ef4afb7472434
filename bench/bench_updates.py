"""Image update check benchmark (issue 14; prints figures, asserts nothing).

1. The check over 30 image references against a loopback registry (Debian's docker-registry):
   wall time, and registry manifest requests (from the registry's own log; the engine's
   /distribution endpoint makes a HEAD and a GET of the manifest per reference).
2. The services page while checks run: median GET /services with and without a check running.

Run: python3 bench/bench_updates.py   (needs the engine, the local busybox image, docker-registry)
"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row  # noqa: E402
from _common import timed  # noqa: E402

from app import create_app  # noqa: E402
from app import settings as settings_module  # noqa: E402
from app.passwords import hash_password  # noqa: E402
from app.stack import updates  # noqa: E402
from app.stack.model import load_model  # noqa: E402
from tests.support.images import ensure_busybox_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

REFS = 30


def main() -> None:
    ensure_busybox_image()
    reg = Registry(level="info").start()
    refs = []
    project = f"spbenchupd{secrets.token_hex(3)}"
    try:
        t0 = time.monotonic()
        base = reg.push("bench/base", "1", "v1")
        for i in range(REFS):
            ref = f"{reg.host}/bench/img{i:02d}:stable"
            subprocess.run(["docker", "tag", base, ref], check=True)
            subprocess.run(["docker", "push", "-q", ref], check=True, capture_output=True)
            refs.append(ref)
        print(f"setup: {REFS} references pushed in {time.monotonic() - t0:.1f} s")
        with tempfile.TemporaryDirectory() as tmp:
            stack_dir = Path(tmp) / project
            stack_dir.mkdir()
            lines = ["services:"]
            for i, ref in enumerate(refs):
                lines += [f"  s{i:02d}:", f"    image: {ref}", '    command: ["sleep", "3600"]']
            (stack_dir / "compose.yml").write_text("\n".join(lines) + "\n")
            app = create_app(
                {
                    "SETTINGS": settings_module.from_env(
                        {
                            "STACKPILOT_DATA_DIR": str(Path(tmp) / "data"),
                            "STACKPILOT_STACK_DIR": str(stack_dir),
                            "STACKPILOT_UPDATE_CHECK_HOURS": "0",
                        }
                    ),
                    "TESTING": True,
                }
            )
            store = app.extensions["stackpilot.store"]
            store.set_setting("stack", {"project": project, "files": [], "profiles": []})
            engine = app.extensions["stackpilot.engine"]
            with app.test_request_context("/services"):
                from app.web.context import current_stack

                stack = current_stack()
                model = load_model(app.extensions["stackpilot.runners"].for_stack(stack))
            before = reg.manifest_requests()
            times = []
            for _ in range(3):
                times.append(timed(lambda: updates.check(engine, stack, model)))
            result = updates.cached(stack)
            per_check = (reg.manifest_requests() - before) / 3
            row(
                "check of 30 references (median of 3)",
                f"{statistics.median(times) * 1000:.0f} ms",
                "< 5 s",
                statistics.median(times) < 5,
            )
            row(
                "registry manifest requests per check",
                f"{per_check:.0f}",
                "<= 60 (the engine: HEAD + GET each)",
                per_check <= 2 * REFS,
            )
            row("states", ", ".join(f"{k}: {v}" for k, v in _count(result).items()))

            user = store.add_user("bench", hash_password("bench-password-long-enough"), "viewer")
            sid = secrets.token_urlsafe(32)
            store.add_session(sid, user.id)
            client = app.test_client()
            with client.session_transaction() as s:
                s["sid"] = sid

            def page() -> None:
                assert client.get("/services").status_code == 200

            page()
            quiet = statistics.median(timed(page) for _ in range(15)) * 1000
            stop = threading.Event()

            def checking() -> None:
                while not stop.is_set():
                    updates.check(engine, stack, model)

            worker = threading.Thread(target=checking)
            worker.start()
            try:
                busy = statistics.median(timed(page) for _ in range(15)) * 1000
            finally:
                stop.set()
                worker.join()
            row("GET /services, no check running", f"{quiet:.1f} ms")
            row("GET /services, checks running back to back", f"{busy:.1f} ms", "< quiet + 10 ms", busy < quiet + 10)
    finally:
        subprocess.run(["docker", "rmi", "-f", *refs], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", f"{reg.host}/bench/base:1"], capture_output=True)
        reg.stop()


def _count(result) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in result.images.values():
        out[s.state] = out.get(s.state, 0) + 1
    return out


if __name__ == "__main__":
    main()
