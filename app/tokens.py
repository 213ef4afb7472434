"""Personal API tokens (issue 16): made by a signed-in person, used by scripts as `Bearer` secrets.

Why a keyed fast hash: a token is 32 random bytes, so nobody can guess it by trying; what must not
happen is that a copy of the database signs anyone in. HMAC-SHA256 with the app's secret key makes
the stored value useless without the key and costs microseconds per request (scrypt would cost
tens of milliseconds on EVERY API call). The plain token is shown once and never stored.

A token acts with its own role, never higher than its owner's role at the moment of use (a
demoted owner demotes the token), and never after its expiry or revocation. Rate limits are kept
in memory per token and per client address, apart from the sign-in throttle.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import RateLimited
from app.store import Store
from app.store import User

PREFIX = "spt_"
ROLES = {"viewer": 1, "operator": 2, "admin": 3}
NAME_MAX = 60
MAX_DAYS = 3650
TOUCH_EVERY = 30.0  # seconds between writes of a token's last-used time (reads stay read-only)


@dataclass(frozen=True)
class Token:
    id: int
    user_id: int
    name: str
    role: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    last_used_from: str
    revoked_at: float | None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired()


def digest(secret: str, plain: str) -> str:
    return hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()


def _token(row) -> Token:
    return Token(
        row["id"],
        row["user_id"],
        row["name"],
        row["role"],
        row["created_at"],
        row["expires_at"],
        row["last_used_at"],
        row["last_used_from"],
        row["revoked_at"],
    )


def create(store: Store, secret: str, owner: User, name: str, role: str, days: int | None = None) -> tuple[str, Token]:
    """A new token for owner: (the plain token, shown once; its row)."""
    name = " ".join(name.split())
    if not name or len(name) > NAME_MAX:
        raise InvalidInput(f"Give the token a name (at most {NAME_MAX} characters).")
    if role not in ROLES:
        raise InvalidInput("Choose viewer, operator or admin.")
    if ROLES[role] > ROLES.get(owner.role, 0):
        raise InvalidInput(f"A token cannot have a higher role than yours ({owner.role}).")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"Expiry: between 1 and {MAX_DAYS} days, or none.")
    plain = PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    expires = now + days * 86400 if days else None
    with store.transaction() as conn:
        if conn.execute(
            "SELECT 1 FROM api_tokens WHERE user_id = ? AND name = ? AND revoked_at IS NULL", (owner.id, name)
        ).fetchone():
            raise InvalidInput(f"You already have a token named {name!r}; revoke it or choose another name.")
        cur = conn.execute(
            "INSERT INTO api_tokens (user_id, name, role, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (owner.id, name, role, digest(secret, plain), now, expires),
        )
        token_id = cur.lastrowid
    return plain, get(store, owner.id, token_id)


def get(store: Store, user_id: int, token_id: int) -> Token:
    rows = store.select("SELECT * FROM api_tokens WHERE id = ? AND user_id = ?", (token_id, user_id))
    if not rows:
        raise NotFound("No such token.")
    return _token(rows[0])


def of_user(store: Store, user_id: int) -> list[Token]:
    rows = store.select(
        "SELECT * FROM api_tokens WHERE user_id = ? ORDER BY revoked_at IS NOT NULL, id DESC", (user_id,)
    )
    return [_token(r) for r in rows]


def revoke(store: Store, user_id: int, token_id: int) -> Token:
    token = get(store, user_id, token_id)
    if token.revoked_at is None:
        with store.transaction() as conn:
            conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (time.time(), token_id))
    return get(store, user_id, token_id)


def authenticate(store: Store, secret: str, plain: str, address: str) -> tuple[Token, User] | None:
    """The token and the user it acts as (role lowered to the token's), or None: unknown, revoked,
    expired, or its owner gone. Records the last use (at most every TOUCH_EVERY seconds)."""
    if not plain.startswith(PREFIX) or len(plain) > 200:
        return None
    rows = store.select("SELECT * FROM api_tokens WHERE hash = ?", (digest(secret, plain),))
    if not rows:
        return None
    token = _token(rows[0])
    if not token.active:
        return None
    owner = store.user_by_id(token.user_id)
    if owner is None:
        return None
    role = min(token.role, owner.role, key=lambda r: ROLES.get(r, 0))
    now = time.time()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY or token.last_used_from != address:
        with store.transaction() as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ?", (now, address, token.id)
            )
    return token, User(owner.id, owner.username, role, "")


class RateLimit:
    """A sliding window of requests per key (`token:<id>`, `addr:<ip>`): at most `limit` per `window`."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one request; RateLimited (with retry_after seconds) past the limit."""
        if self.limit <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                wait = max(1, math.ceil(self.window - (now - hits[0])))
                error = RateLimited(
                    f"More than {self.limit} API requests in {int(self.window)} s; try again in {wait} s."
                )
                error.retry_after = wait
                raise error
            hits.append(now)
            if len(self._hits) > 10000:  # forget idle keys so memory stays bounded
                for k in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.window]:
                    del self._hits[k]
