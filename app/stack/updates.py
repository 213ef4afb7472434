"""Build and update runs (issue 14): several Compose steps as ONE run of the progress panel.

Why one run: "Rebuild & recreate" is `build` then `up -d --no-deps`, an image update is "keep the
old image id under a rollback tag, pull, recreate". Two separate runs would free the stack lock
between them (another action could slip in) and show two panels; a failing first step must stop
the rest, so a failed build never replaces the running container.

API:
- ``start_steps(runner, steps, title, user, on_done=None) -> Run``: each step is Compose arguments
  (a tuple of str) or a callable ``step(run) -> int`` (Python work that writes its own lines);
  the first non-zero exit ends the run with that code. StackBusy is raised here, not later.
- ``failed_step(lines) -> str``: the BuildKit step that failed ("[2/3] RUN make"), "" if none.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence

from app import compose
from app.compose import ACTION_TIMEOUT
from app.compose import ComposeRunner
from app.compose import Run

log = logging.getLogger(__name__)

Step = tuple[str, ...] | Callable[[Run], int]

# BuildKit plain progress: "#7 [app 2/3] RUN false" then "#7 ERROR: process ... exit code: 1".
_STEP = re.compile(r"^#(\d+) (\[[^\]]+\] .+)$")
_ERROR = re.compile(r"^#(\d+) ERROR:")


def failed_step(lines: Sequence[str]) -> str:
    """The Dockerfile step BuildKit reported as failed, as BuildKit names it."""
    steps: dict[str, str] = {}
    failed = ""
    for line in lines:
        m = _STEP.match(line.strip())
        if m:
            steps.setdefault(m.group(1), m.group(2))
            continue
        m = _ERROR.match(line.strip())
        if m and m.group(1) in steps:
            failed = steps[m.group(1)]
    return failed


def _describe(step: Step) -> str:
    return " ".join(step) if isinstance(step, tuple) else getattr(step, "__doc__", "") or "step"


def start_steps(runner: ComposeRunner, steps: Sequence[Step], title: str, user: str = "",
                on_done: Callable[[Run], None] | None = None, timeout: float = ACTION_TIMEOUT) -> Run:
    """Run the steps one after the other under the stack lock, in one Run (one panel)."""
    runner.runners.compose_version()
    first = next((s for s in steps if isinstance(s, tuple)), ("build",))
    job = runner._new_run(list(first), title, user)
    combined = [a for s in steps for a in ([*s, "&&"] if isinstance(s, tuple) else [])][:-1] or job.args
    runner._acquire(job.title, user, 0)
    runner.runners.remember(job)

    def body() -> None:
        code = 0
        started = time.monotonic()
        try:
            for step in steps:
                left = max(1.0, timeout - (time.monotonic() - started))
                if len(steps) > 1:
                    job.add(f"$ {_describe(step)}" if isinstance(step, tuple) else f"— {_describe(step)}")
                if isinstance(step, tuple):
                    job.args = list(step)  # what _execute runs
                    code = runner._execute(job, left, None)
                else:
                    code = step(job)
                if code != 0 and isinstance(step, tuple) and (step[:1] == ("build",) or "--build" in step):
                    where = failed_step(job.lines_since(0)[0])
                    job.add(f"Build failed{' at step ' + where if where else ''} (exit {code}); "
                            "the running containers were left as they were.")
                if code != 0:
                    break
        except Exception as e:  # the thread must always finish the run and free the stack
            log.exception("run %s failed", job.title)
            job.add(f"Could not run: {getattr(e, 'message', e)}")
            code = -1
        finally:
            job.args = combined  # the whole sequence, "&&"-joined, for the panel and the tests
            job.exit_code, job.finished_at = code, time.time()
            runner._release()
            if on_done is not None:  # the audit row gets this run's stack (app.compose.running_for)
                compose._thread_stack.key = "/".join(runner.key)
                try:
                    on_done(job)
                except Exception:
                    log.exception("on_done hook of %s failed", job.title)
                finally:
                    compose._thread_stack.key = ""
            job.finish(code)

    threading.Thread(target=body, name=f"steps-{job.title}", daemon=True).start()
    return job
