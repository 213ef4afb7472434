"""The embedded store: one SQLite file in the data dir for users, sessions, settings and audit.

SQLite in WAL mode lets page reads go on while a write commits; each thread keeps its own
connection. The schema is versioned by a small migration table and upgraded at start-up.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIGRATIONS: list[str] = [
    # 1: users, server-side sessions, settings, audit
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
        created_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        client TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        username TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT 'ok',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_at ON audit(at);
    """,
    # 2 (hardening): failures counted per sign-in/setup-token key, kept across restarts
    """
    CREATE TABLE IF NOT EXISTS throttles (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_at REAL NOT NULL
    );
    """,
    # engines (issue 11): Docker engines an admin added (tcp+TLS, ssh); their certificates and keys
    # are files under the data dir's engines/<id>/, never rows
    """
    CREATE TABLE IF NOT EXISTS engines (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        url TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    """,
    # many stacks (issue 11): the stack registry, per-user stack limits, the stack of each audit row
    """
    CREATE TABLE IF NOT EXISTS stacks (
        slug TEXT PRIMARY KEY,
        project TEXT NOT NULL DEFAULT '',
        directory TEXT NOT NULL DEFAULT '',
        files TEXT NOT NULL DEFAULT '[]',
        engine TEXT NOT NULL DEFAULT 'local',
        source TEXT NOT NULL,
        added_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS user_stacks (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        stack TEXT NOT NULL,
        PRIMARY KEY (user_id, stack)
    );
    ALTER TABLE audit ADD COLUMN stack TEXT NOT NULL DEFAULT '';
    CREATE INDEX IF NOT EXISTS audit_stack ON audit(stack, id)
    """,
    # API tokens (issue 16): personal tokens, stored as HMAC-SHA256 of the token under the app secret
    """
    CREATE TABLE IF NOT EXISTS api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
        hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL,
        last_used_at REAL,
        last_used_from TEXT NOT NULL DEFAULT '',
        revoked_at REAL
    );
    CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens(user_id)
    """,
]
SQLITE_MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password_hash: str


@dataclass(frozen=True)
class AuditEvent:
    at: float
    username: str
    action: str
    target: str
    result: str
    detail: str


class Store:
    """Thread-safe access to the SQLite database; every public method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Password hashes and session ids: readable by us only (SQLite gives -wal/-shm the same mode).
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.migrate()

    # -- plumbing ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken immediately, so check-then-insert is atomic across threads
        and processes (BEGIN IMMEDIATE holds SQLite's write lock)."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version now in force."""
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (0)")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (number,))
            return len(MIGRATIONS)

    # -- users ------------------------------------------------------------------------------
    def count_users(self, role: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM users", ()
        if role:
            sql, args = sql + " WHERE role = ?", (role,)
        return self._conn().execute(sql, args).fetchone()[0]

    def user_by_name(self, username: str) -> User | None:
        row = self._conn().execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return _user(row)

    def user_by_id(self, user_id: int) -> User | None:
        if not 0 < user_id <= SQLITE_MAX_INT:  # a 26-digit id from a URL is nobody, not an error
            return None
        row = self._conn().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return _user(row)

    def users(self) -> list[User]:
        rows = self._conn().execute("SELECT * FROM users ORDER BY username").fetchall()
        return [_user(r) for r in rows]

    def add_user(self, username: str, password_hash: str, role: str) -> User | None:
        """The new user, or None when the name (in any case) is taken, even by a concurrent add."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (username) DO NOTHING",
                (username, password_hash, role, time.time()),
            )
            if cur.rowcount != 1:
                return None
        return User(cur.lastrowid, username, role, password_hash)

    def add_first_admin(self, username: str, password_hash: str) -> User | None:
        """Create the admin only if no admin exists yet; None when someone else was first."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE role = 'admin'").fetchone():
                return None
            cur = conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, 'admin', ?)",
                (username, password_hash, time.time()),
            )
        return User(cur.lastrowid, username, "admin", password_hash)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    def set_role(self, user_id: int, role: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))

    # -- sessions ---------------------------------------------------------------------------
    def add_session(self, session_id: str, user_id: int, client: str = "") -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, user_id, created_at, last_seen, client) VALUES (?, ?, ?, ?, ?)",
                (session_id, user_id, now, now, client),
            )

    def session_user(self, session_id: str, idle_seconds: float, touch: bool = True) -> User | None:
        """The user of a live session, touching it (unless touch is False: an open log socket is
        not activity); an idle-expired session is deleted."""
        conn = self._conn()
        row = conn.execute(
            "SELECT u.*, s.last_seen FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            return None
        now = time.time()
        if now - row["last_seen"] > idle_seconds:
            self.delete_session(session_id)
            return None
        if touch and now - row["last_seen"] > 30:  # touch at most every 30 s: reads stay reads
            with self.transaction() as w:
                w.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, session_id))
        return _user(row)

    def delete_session(self, session_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def delete_other_sessions(self, user_id: int, keep: str | None) -> int:
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?", (user_id, keep))
        return cur.rowcount

    # -- throttles (sign-in and setup-token failures) ----------------------------------------
    def count_attempt(self, keys: Sequence[str], wait_for: Callable[[str, int], float], forget_after: float) -> float:
        """Atomically: the seconds some key must still wait (nothing counted), or 0 after counting
        this attempt on every key. Counting before the check is what makes the limit unraceable."""
        marks = ",".join("?" * len(keys))
        with self.transaction() as conn:
            now = time.time()  # inside the lock: a concurrent attempt's last_at is never "ahead"
            rows = {
                r["key"]: r
                for r in conn.execute(
                    f"SELECT key, failures, last_at FROM throttles WHERE key IN ({marks})", tuple(keys)
                )
            }
            counts = {}
            wait = 0.0
            for key in keys:
                row = rows.get(key)
                failures = row["failures"] if row and now - row["last_at"] < forget_after else 0
                counts[key] = failures
                delay = wait_for(key, failures) if failures else 0.0
                if delay > 0:
                    wait = max(wait, row["last_at"] + delay - now)
            if wait > 0:
                return wait
            conn.executemany(
                "INSERT INTO throttles (key, failures, last_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at",
                [(key, counts[key] + 1, now) for key in keys],
            )
            # Bound the table: rows quiet for longer than forget_after count for nothing.
            conn.execute("DELETE FROM throttles WHERE last_at < ?", (now - forget_after,))
        return 0.0

    def refund_attempt(self, keys: Sequence[str]) -> None:
        """Take back one counted attempt (it was not a failure: the check never ran)."""
        with self.transaction() as conn:
            conn.executemany("UPDATE throttles SET failures = MAX(0, failures - 1) WHERE key = ?", [(k,) for k in keys])

    def clear_throttle(self, keys: Sequence[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM throttles WHERE key = ?", [(k,) for k in keys])

    def throttle_failures(self, key: str) -> int:
        row = self._conn().execute("SELECT failures FROM throttles WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    # -- settings ---------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._conn().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -- audit ------------------------------------------------------------------------------
    # The stack an audit row belongs to when the caller does not say: the web layer sets this to
    # "the current request's stack, or the stack of the Compose run finishing in this thread".
    audit_stack: Callable[[], str] = staticmethod(lambda: "")

    def audit(
        self,
        username: str,
        action: str,
        target: str = "",
        result: str = "ok",
        detail: str = "",
        stack: str | None = None,
    ) -> None:
        """Record who did what to which target (on which stack), and how it ended. Never pass secret values."""
        stack = self.audit_stack() if stack is None else stack
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, username, action, target, result, detail, stack) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), username, action, target, result, detail[:2000], stack or ""),
            )

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """A read for a domain module's own tables (the stack registry), outside a write transaction."""
        return self._conn().execute(sql, tuple(args)).fetchall()

    def audit_events(self, limit: int = 100) -> list[AuditEvent]:
        rows = (
            self._conn()
            .execute(
                "SELECT at, username, action, target, result, detail FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [AuditEvent(*r) for r in rows]

    # -- user changes that must leave at least one admin (access area) -----------------------
    def set_role_keeping_an_admin(self, user_id: int, role: str) -> bool:
        """Change a role unless that would leave no admin; False when refused."""
        with self.transaction() as conn:
            if role != "admin" and _is_last_admin(conn, user_id):
                return False
            conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
        return True

    def delete_user_keeping_an_admin(self, user_id: int) -> bool:
        """Delete a user (and their sessions) unless they are the last admin; False when refused."""
        with self.transaction() as conn:
            if _is_last_admin(conn, user_id):
                return False
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return True


def _is_last_admin(conn: sqlite3.Connection, user_id: int) -> bool:
    admins = [r[0] for r in conn.execute("SELECT id FROM users WHERE role = 'admin'")]
    return admins == [user_id]


def _user(row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    return User(row["id"], row["username"], row["role"], row["password_hash"])
