"""Password hashing with scrypt from the standard library, at OWASP's minimum cost or above.

OWASP (Password Storage Cheat Sheet): N=2**17, r=8, p=1. Stored as
`scrypt$N$r$p$salt$hash` so the cost can be raised later without breaking old hashes.

Each hash or check takes 128 MiB (128 * N * r bytes) for its whole run, so checks in flight are
bounded by a memory budget (CheckSlots): four sign-ins arriving together must not take a 512 MiB
container down. Past the budget a check waits briefly, then gives up with 429.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

from app.errors import RateLimited

MIN_LENGTH = 12
N, R, P = 2**17, 8, 1
_MAXMEM = 256 * 1024 * 1024
MIB = 1024 * 1024
CHECK_MIB = 128 * N * R // MIB  # what one hash or check holds while it runs (128 MiB)


class Busy(RateLimited):
    """Every password-check slot is taken and the wait ran out: try again in a moment."""

    retry_after = 5


class CheckSlots:
    """At most `slots` scrypt runs at once; `queue` more may wait up to `wait` seconds each.

    A waiting request holds a server thread, so the queue is bounded too: past it, 429 at once.
    """

    def __init__(self, slots: int, queue: int | None = None, wait: float = 6.0) -> None:
        self.slots = max(1, slots)
        self.queue = self.slots * 4 if queue is None else queue
        self.wait = wait
        self._free = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self.waiting = 0
        self.running = 0
        self.peak = 0

    @classmethod
    def for_budget(cls, budget_mib: int) -> CheckSlots:
        return cls(max(1, budget_mib // CHECK_MIB))

    def __enter__(self) -> CheckSlots:
        if not self._free.acquire(blocking=False):
            with self._lock:
                if self.waiting >= self.queue:
                    raise Busy(_BUSY)
                self.waiting += 1
            try:
                if not self._free.acquire(timeout=self.wait):
                    raise Busy(_BUSY)
            finally:
                with self._lock:
                    self.waiting -= 1
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.running -= 1
        self._free.release()


_BUSY = "Stackpilot is checking other passwords right now. Try again in a few seconds."
# Two checks at once: 256 MiB, which leaves a 512 MiB container room for everything else.
_slots = CheckSlots(2)


def configure(budget_mib: int) -> CheckSlots:
    """Size the slots from the memory budget (STACKPILOT_PASSWORD_MEMORY_MIB) at start-up."""
    global _slots
    _slots = CheckSlots.for_budget(budget_mib)
    return _slots


def slots() -> CheckSlots:
    return _slots


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    with _slots:
        digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of password against a stored hash; False for any malformed hash.

    Raises Busy when no check slot frees up in time (the caller answers 429)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        with _slots:
            actual = hashlib.scrypt(
                password.encode(),
                salt=_unb64(salt),
                n=int(n),
                r=int(r),
                p=int(p),
                maxmem=_MAXMEM,
                dklen=len(expected),
            )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if password.strip() != password:
        return "The password cannot start or end with spaces."
    return None


# Used to spend the same time when a username does not exist (no user enumeration by timing).
DUMMY_HASH = "scrypt$131072$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + _b64(bytes(32))
