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


# -- throttles ------------------------------------------------------------------------------
def wait_message(seconds: float, what: str = "failed sign-ins") -> str:
    if seconds < 90:
        secs = max(1, math.ceil(seconds))
        return f"Too many {what} from your address. Wait {secs} second{'s' if secs != 1 else ''} and try again."
    minutes = math.ceil(seconds / 60)
    return f"Too many {what} from your address. Wait {minutes} minutes and try again."


class Throttle:
    """Failures counted per (account, address) and per address, in SQLite (a restart keeps them).

    Nobody is ever locked out everywhere: a wrong guess slows down only the address it came
    from, so the owner signing in from another address is not affected. After `free` failures on
    a key each further attempt waits twice as long as the last (5 s, 10 s, 20 s ... up to `cap`),
    measured from the start of the last attempt (a check itself takes most of a second).
    An attempt is counted *before* the password is checked, in one transaction, so twenty
    concurrent guesses cannot all slip under the limit; a right password clears its pair.
    """

    def __init__(
        self,
        store: Store,
        *,
        per_pair: int = 5,
        per_address: int = 20,
        per_claim: int = 10,
        first_delay: float = 5,
        cap: float = 15 * 60,
        forget_after: float = 6 * 3600,
    ) -> None:
        self.store = store
        self.first_delay = first_delay
        self.free = {"pair": per_pair, "addr": per_address, "claim": per_claim}
        self.cap = cap
        self.forget_after = forget_after

    def delay(self, key: str, failures: int) -> float:
        free = self.free[key.split("|", 1)[0]]
        if failures < free:
            return 0.0
        return float(min(self.cap, self.first_delay * 2 ** min(failures - free, 20)))

    def attempt(self, address: str, account: str | None = None, what: str = "failed sign-ins") -> Attempt:
        """Count one attempt from address (at account); RateLimited when it must wait first."""
        if account is None:
            keys = [f"claim|{address}"]
        else:
            keys = [f"pair|{account.lower()}|{address}", f"addr|{address}"]
        wait = self.store.count_attempt(keys, self.delay, self.forget_after)
        if wait > 0:
            error = RateLimited(wait_message(wait, what))
            error.retry_after = math.ceil(wait)
            raise error
        return Attempt(self.store, keys)


@dataclass
class Attempt:
    """One counted attempt: it stays a failure unless it succeeded or never ran."""

    store: Store
    keys: list[str]

    def succeeded(self) -> None:
        """The (account, address) pair starts clean; the address keeps its other failures."""
        pair = [k for k in self.keys if k.startswith("pair|")]
        self.store.clear_throttle(pair)
        self.store.refund_attempt([k for k in self.keys if k not in pair])

    def not_checked(self) -> None:
        self.store.refund_attempt(self.keys)


def check_password(throttle: Throttle, address: str, account: str, password: str, stored: str) -> bool:
    """A throttled, memory-bounded password check: every place that checks a password uses it."""
    attempt = throttle.attempt(address, account)
    try:
        ok = passwords.verify_password(password, stored)
    except passwords.Busy:
        attempt.not_checked()
        raise
    if ok:
        attempt.succeeded()
    return ok


# -- the setup token --------------------------------------------------------------------------
class SetupToken:
    """The one-time secret that lets the first person claim the admin account.

    A new token is made at each start while nobody has claimed; it lives in memory and in
    `<data dir>/setup-token` (0600) so the person installing can read it from the host.
    Claims are serialised by one lock, so concurrent claims cannot each spend a password hash.
    """

    def __init__(self, data_dir: Path, throttle: Throttle) -> None:
        self.path = Path(data_dir) / TOKEN_FILE
        self._token: str | None = None
        self._lock = threading.Lock()
        self.throttle = throttle

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
        """Create the first admin when candidate is the token; exactly one claim can win.

        Wrong tokens slow down only the address they came from. The attempt is counted under the
        claim lock, before the compare, so concurrent guesses are counted one after another."""
        username = username.strip()
        check_username(username)
        if problem := passwords.password_problem(password):
            raise InvalidInput(problem)
        with self._lock:
            if self._token is None or store.count_users("admin"):
                raise Forbidden("The admin account has already been claimed. Sign in instead.")
            attempt = self.throttle.attempt(client, what="wrong setup tokens")
            if not hmac.compare_digest(candidate.strip().encode(), self._token.encode()):
                raise Forbidden(
                    "That setup token is not right. Copy it again from the server's "
                    "log or from the setup-token file in its data folder."
                )
            attempt.succeeded()
            user = store.add_first_admin(username, passwords.hash_password(password))
            if user is None:  # another process or the password file won meanwhile
                raise Forbidden("The admin account has already been claimed. Sign in instead.")
            self.discard()
        log.info("admin account %r claimed with the setup token", username)
        return user


def start_up(store: Store, data_dir: Path, admin_user: str, password_file: Path | None, link_base: str) -> SetupToken:
    """At start: create the admin from the password file, or print a fresh setup token."""
    token = SetupToken(data_dir, Throttle(store))
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
            "A username is 1 to 64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit."
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
    user = store.add_user(username, passwords.hash_password(password), role)
    if user is None:  # a concurrent add of the same name won
        raise InvalidInput(f"There is already a user named {username!r}.")
    return user


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


def change_password(
    store: Store, throttle: Throttle, client: str, user: User, current: str, new: str, confirm: str
) -> None:
    """Replace user's password after checking the current one (throttled like a sign-in)."""
    if new != confirm:
        raise InvalidInput("The new password and its confirmation differ.")
    if problem := passwords.password_problem(new):
        raise InvalidInput(problem)
    if not check_password(throttle, client, user.username, current, user.password_hash):
        raise InvalidInput("The current password is not right.")
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
    throttle: Throttle
