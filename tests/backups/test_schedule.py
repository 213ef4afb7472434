"""Schedules: when a backup is due, the app's thread starts it, retention keeps the newest N, and the
thread stops cleanly."""

from __future__ import annotations

import datetime as dt

import pytest

from app.backups.schedule import Scheduler
from app.backups.schedule import last_due
from app.backups.schedule import parse_schedule
from app.backups.store import BackupStore
from app.errors import InvalidInput
from app.web.backups import JOBS
from app.web.backups import SCHEDULER
from app.web.backups import backups_root
from tests.support.live import wait_for

UTC = dt.UTC


def test_due_times():
    now = dt.datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # a Monday
    assert last_due({"every": "off"}, now) is None
    assert last_due({"every": "daily", "at": "03:00"}, now) == now.replace(hour=3)
    assert last_due({"every": "daily", "at": "17:00"}, now) == dt.datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    assert last_due({"every": "weekly", "at": "03:00", "weekday": 6}, now) == dt.datetime(
        2026, 11, 29, 3, 0, tzinfo=UTC
    )
    assert last_due({"every": "weekly", "at": "15:00", "weekday": 0}, now) == now.replace(hour=15)
    assert last_due({"every": "weekly", "at": "17:00", "weekday": 0}, now) == dt.datetime(
        2026, 11, 23, 17, 0, tzinfo=UTC
    )
    for bad in (
        {"every": "hourly"},
        {"every": "daily", "at": "25:00"},
        {"every": "daily", "keep": "0"},
        {"every": "weekly", "weekday": "9"},
    ):
        with pytest.raises(InvalidInput):
            parse_schedule(bad)
    assert parse_schedule({"every": "daily", "at": "04:30", "keep": "3"})["keep"] == 3


@pytest.mark.docker
def test_due_backup_runs_and_old_ones_go(app_factory, small_stack):
    app = app_factory(stack_dir=small_stack.dir)
    with app.app_context():
        store = app.extensions["stackpilot.store"]
        store.set_setting("stack", {"project": small_stack.project, "files": [], "profiles": []})
        slug = app.extensions["stackpilot.stacks"].default().slug
        store.set_setting(f"backups.schedule:{slug}", {"every": "daily", "at": "03:00", "keep": 1, "weekday": 6})
        scheduler: Scheduler = app.extensions[SCHEDULER]
        day1 = dt.datetime(2026, 11, 30, 3, 5, tzinfo=UTC)
        assert scheduler.run_due(day1) == [slug]
        app.extensions[JOBS].join(60)
        assert scheduler.run_due(day1 + dt.timedelta(hours=1)) == []  # once per due time
        assert scheduler.run_due(day1 + dt.timedelta(days=1)) == [slug]
        app.extensions[JOBS].join(60)
        kept = BackupStore(backups_root(store, app.config["SETTINGS"]), slug).list()
        assert [m.status for m in kept] == ["ok"] and kept[0].scope == "all"
        assert [e.service for e in kept[0].entries] == ["db", "web"]
        runs = [e for e in store.audit_events(20) if e.action == "backup.run"]
        assert len(runs) == 2 and runs[0].username == "schedule" and "removed 1 old" in runs[0].detail

    # the thread ticks and stops cleanly
    ticker = Scheduler(app, tick=0.01)
    ticks = []
    ticker.run_due = lambda now: ticks.append(now) or []
    ticker.start()
    wait_for(lambda: len(ticks) >= 3, timeout=10, message="three ticks")
    ticker.stop()
    assert not ticker._thread.is_alive()
