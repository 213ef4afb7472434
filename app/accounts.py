"""Accounts without Flask: the one-time setup token, sign-in rate limits, and user management.

The Docker socket is root on the host, so the first admin account is only handed to whoever can
read the server's log or data dir (the setup token), and guessing passwords is throttled.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from app import passwords
from app.errors import Forbidden
from app.errors import InvalidInput
from app.errors import NotFound
from app.errors import RateLimited
from app.store import Store
from app.store import User

log = logging.getLogger(__name__)

TOKEN_FILE = "setup-token"
ROLES = ("admin", "operator", "viewer")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


# -- rate limits ------------------------------------------------------------------------------
class RateLimiter:
    """Counts failures per key in a sliding window; a key with `limit` failures waits.

    In memory on purpose: Stackpilot is one process, and a restart (which needs host access)
    may forget the counts.
    """

    def __init__(self, limit: int, window_seconds: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:  # bound memory: forget the stalest key
                stalest = min(self._hits, key=lambda k: self._hits[k][-1] if self._hits[k] else 0)
                del self._hits[stalest]
            hits = self._hits[key] = deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        return hits

    def wait_seconds(self, key: str) -> float:
        """0 when key may try now, else the seconds until its oldest counted failure expires."""
        now = time.monotonic()
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - hits[0]))

    def fail(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


def wait_message(seconds: float, what: str = "failed sign-ins") -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many {what}. Wait {minutes} {unit} and try again."


class LoginThrottle:
    """Sign-in failures counted per client address and per account name (5 per 15 minutes)."""

    def __init__(self, limit: int = 5, window_seconds: float = 15 * 60) -> None:
        self.by_client = RateLimiter(limit, window_seconds)
        self.by_account = RateLimiter(limit, window_seconds)

    def check(self, client: str, username: str) -> None:
        """Raise RateLimited before any password work when either key has used its attempts."""
        wait = max(self.by_client.wait_seconds(client), self.by_account.wait_seconds(username.lower()))
        if wait:
            raise RateLimited(wait_message(wait))

    def failed(self, client: str, username: str) -> None:
        self.by_client.fail(client)
        self.by_account.fail(username.lower())

    def succeeded(self, username: str) -> None:
        self.by_account.reset(username.lower())


# -- the setup token --------------------------------------------------------------------------
class SetupToken:
    """The one-time secret that lets the first person claim the admin account.

    A new token is made at each start while nobody has claimed; it lives in memory and in
    `<data dir>/setup-token` (0600) so the person installing can read it from the host.
    Claims are serialised by one lock, so concurrent claims cannot each spend a password hash.
    """

    def __init__(self, data_dir: Path, limiter: RateLimiter | None = None) -> None:
        self.path = Path(data_dir) / TOKEN_FILE
        self._token: str | None = None
        self._lock = threading.Lock()
        self.limiter = limiter or RateLimiter(10, 15 * 60)

    @property
    def active(self) -> bool:
        return self._token is not None

    def issue(self) -> str:
        """Make a fresh 256-bit token and write it to the token file, readable by us only."""
        token = secrets.token_urlsafe(32)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(token + "\n")
        os.replace(tmp, self.path)
        self._token = token
        return token

    def discard(self) -> None:
        self._token = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def claim(self, store: Store, client: str, candidate: str, username: str, password: str) -> User:
        """Create the first admin when candidate is the token; exactly one claim can win."""
        wait = self.limiter.wait_seconds(client)
        if wait:
            raise RateLimited(wait_message(wait, "wrong setup tokens"))
        username = username.strip()
        check_username(username)
        if problem := passwords.password_problem(password):
            raise InvalidInput(problem)
        with self._lock:
            if self._token is None or store.count_users("admin"):
                raise Forbidden("The admin account has already been claimed. Sign in instead.")
            if not hmac.compare_digest(candidate.strip().encode(), self._token.encode()):
                self.limiter.fail(client)
                raise Forbidden(
                    "That setup token is not right. Copy it again from the server's "
                    "log or from the setup-token file in its data folder."
                )
            user = store.add_first_admin(username, passwords.hash_password(password))
            if user is None:  # another process or the password file won meanwhile
                raise Forbidden("The admin account has already been claimed. Sign in instead.")
            self.discard()
        log.info("admin account %r claimed with the setup token", username)
        return user


def start_up(
    store: Store, data_dir: Path, admin_user: str, password_file: Path | None, link_base: str
) -> SetupToken:
    """At start: create the admin from the password file, or print a fresh setup token."""
    token = SetupToken(data_dir)
    if password_file is not None and not store.count_users("admin"):
        password = password_file.read_text().strip()
        if problem := passwords.password_problem(password):
            log.error("STACKPILOT_ADMIN_PASSWORD_FILE refused: %s", problem)
        elif store.add_first_admin(admin_user, passwords.hash_password(password)):
            log.info("admin %r created from STACKPILOT_ADMIN_PASSWORD_FILE", admin_user)
    if store.count_users("admin"):
        token.discard()
        return token
    value = token.issue()
    log.warning(
        "No admin yet. Claim the admin account with this one-time setup token:\n\n    %s\n\n"
        "or open %s/setup/#token=%s\n(the token is also in %s; a new one is made at each start "
        "until the account is claimed)",
        value,
        link_base,
        value,
        token.path,
    )
    return token


# -- users ------------------------------------------------------------------------------------
def check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise InvalidInput(
            "A username is 1 to 64 letters, digits, dots, dashes, underscores or @, "
            "starting with a letter or digit."
        )


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}: choose admin, operator or viewer.")


def add_user(store: Store, username: str, password: str, role: str) -> User:
    """A new account; the name is unique regardless of case."""
    username = username.strip()
    check_username(username)
    check_role(role)
    if problem := passwords.password_problem(password):
        raise InvalidInput(problem)
    if store.user_by_name(username) is not None:
        raise InvalidInput(f"There is already a user named {username!r}.")
    return store.add_user(username, passwords.hash_password(password), role)


def change_role(store: Store, user_id: int, role: str) -> User:
    check_role(role)
    user = _existing(store, user_id)
    if not store.set_role_keeping_an_admin(user_id, role):
        raise Forbidden(f"{user.username} is the last admin; make someone else admin first.")
    return store.user_by_id(user_id)


def remove_user(store: Store, user_id: int) -> User:
    user = _existing(store, user_id)
    if not store.delete_user_keeping_an_admin(user_id):
        raise Forbidden(f"{user.username} is the last admin and cannot be removed.")
    return user


def change_password(store: Store, user: User, current: str, new: str, confirm: str) -> None:
    """Replace user's password after checking the current one."""
    if not passwords.verify_password(current, user.password_hash):
        raise InvalidInput("The current password is not right.")
    if new != confirm:
        raise InvalidInput("The new password and its confirmation differ.")
    if problem := passwords.password_problem(new):
        raise InvalidInput(problem)
    store.set_password_hash(user.id, passwords.hash_password(new))


def reset_password(store: Store, user_id: int, new: str) -> User:
    """An admin sets a new password for someone who lost theirs; their sessions end."""
    user = _existing(store, user_id)
    if problem := passwords.password_problem(new):
        raise InvalidInput(problem)
    store.set_password_hash(user.id, passwords.hash_password(new))
    store.delete_other_sessions(user.id, keep=None)
    return user


def _existing(store: Store, user_id: int) -> User:
    user = store.user_by_id(user_id)
    if user is None:
        raise NotFound("That user does not exist (any more).")
    return user


@dataclass(frozen=True)
class Access:
    """What the web layer keeps per app: the token and the sign-in throttle."""

    token: SetupToken
    throttle: LoginThrottle
