"""Scheduled backups: per stack daily or weekly at a time (UTC), keeping the newest N.

One thread owned by the app wakes every TICK seconds, runs what is due (one stack after another,
through the same job runner as Back up now) and stops cleanly on shutdown (an Event, joined by the
app's shutdown hooks). What a run did goes to the audit log like any backup.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from collections.abc import Mapping

from app.errors import InvalidInput

log = logging.getLogger(__name__)

TICK = 30.0
KEY = "backups.schedule:"
LAST = "backups.schedule-last:"
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_schedule(form: Mapping[str, str]) -> dict:
    """The schedule form as a setting; a clear error for a bad time or count."""
    every = form.get("every", "off")
    if every not in ("off", "daily", "weekly"):
        raise InvalidInput("Choose off, daily or weekly.")
    at = (form.get("at") or "03:00").strip()
    if not TIME_RE.match(at):
        raise InvalidInput("The time is HH:MM (24 hours, UTC), e.g. 03:30.")
    weekday = form.get("weekday", "6")
    if not weekday.isdigit() or int(weekday) > 6:
        raise InvalidInput("Choose a day of the week.")
    keep = form.get("keep", "7").strip()
    if not keep.isdigit() or not 1 <= int(keep) <= 1000:
        raise InvalidInput("Keep between 1 and 1000 backups.")
    return {"every": every, "at": at, "weekday": int(weekday), "keep": int(keep)}


def last_due(schedule: dict, now: dt.datetime) -> dt.datetime | None:
    """The most recent moment the schedule was due at or before `now` (None when off)."""
    if schedule.get("every") not in ("daily", "weekly"):
        return None
    hour, minute = (int(x) for x in schedule.get("at", "03:00").split(":"))
    due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if schedule["every"] == "daily":
        return due if due <= now else due - dt.timedelta(days=1)
    due -= dt.timedelta(days=(due.weekday() - int(schedule.get("weekday", 6))) % 7)
    return due if due <= now else due - dt.timedelta(days=7)


class Scheduler:
    """The app's schedule thread; `run_due(now)` is the whole of one tick (tests call it directly)."""

    def __init__(self, app, tick: float = TICK) -> None:
        self.app = app
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runner: Callable[[str, dict], None] | None = None  # (stack slug, schedule) -> start a job
        app.extensions.setdefault("stackpilot.shutdown", []).append(self.stop)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="backup-schedule", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due(dt.datetime.now(dt.UTC))
            except Exception:
                log.exception("backup schedule tick failed")

    def run_due(self, now: dt.datetime) -> list[str]:
        """Start the backups that are due; the slugs started."""
        store = self.app.extensions["stackpilot.store"]
        started = []
        rows = store.select("SELECT key FROM settings WHERE key LIKE ?", (KEY + "%",))
        for row in rows:
            slug = row["key"][len(KEY) :]
            schedule = store.get_setting(row["key"], {}) or {}
            due = last_due(schedule, now)
            if due is None:
                continue
            last = store.get_setting(LAST + slug, "")
            if last and last >= due.isoformat():
                continue
            store.set_setting(LAST + slug, now.isoformat())
            if self.runner is not None:
                try:
                    self.runner(slug, schedule)
                    started.append(slug)
                except Exception as e:  # one stack's trouble must not stop the others
                    log.warning("scheduled backup of %s not started: %s", slug, e)
                    store.audit("schedule", "backup.run", f"{slug}: all", "failed", str(e)[:500])
        return started
