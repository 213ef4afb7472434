import sqlite3
import threading

from app.store import MIGRATIONS
from app.store import Store


def test_schema_is_versioned_and_wal(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Opening again migrates nothing and loses nothing.
    store.set_setting("stack", {"project": "demo"})
    assert Store(tmp_path / "db.sqlite3").get_setting("stack") == {"project": "demo"}


def test_first_admin_is_created_exactly_once_under_contention(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    results = []
    barrier = threading.Barrier(20)

    def claim(i):
        barrier.wait()
        results.append(Store(tmp_path / "db.sqlite3").add_first_admin(f"admin{i}", "hash"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert store.count_users("admin") == 1


def test_audit_keeps_newest_first(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    store.audit("alice", "stop", "web")
    store.audit("alice", "start", "web", result="failed", detail="exit 1")
    events = store.audit_events()
    assert [(e.action, e.result) for e in events] == [("start", "failed"), ("stop", "ok")]


def test_database_files_are_private(tmp_path):
    import stat

    store = Store(tmp_path / "db.sqlite3")
    store.set_setting("k", "v")
    for path in tmp_path.glob("db.sqlite3*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
