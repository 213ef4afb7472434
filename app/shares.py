"""Fair shares of the server's worker threads between the people using it (no Flask here).

Every long-lived stream (a live log socket, a .log download, a terminal) holds one waitress
worker thread for as long as it runs. Without bounds one viewer with a script can take every
thread and the pages stop answering for everyone. So:

- each person may hold a few streams of each kind (per-user caps);
- each kind has a total (the log-socket cap from the settings);
- all streams together never take the reserve: `threads - reserved` is the most they may hold,
  so the reserved threads are always free for pages.

A refusal says who holds what, so the person refused knows whom to ask (or which tab to close).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from dataclasses import field

from app.errors import RateLimited

KIND_WORDS = {
    "logs": ("log view", "log views"),
    "download": ("download", "downloads"),
    "terminal": ("terminal", "terminals"),
    "echo": ("echo socket", "echo sockets"),
}


class ShareRefused(RateLimited):
    """A stream past a cap; the message names the holders. Retry when one of them ends."""

    retry_after = 5


def _words(kind: str, count: int) -> str:
    one, many = KIND_WORDS.get(kind, (kind, kind))
    return f"{count} {one if count == 1 else many}"


@dataclass
class Share:
    """One stream's hold on a thread; release() is idempotent (close paths may run twice)."""

    shares: Shares
    kind: str
    user: str
    released: bool = field(default=False)

    def release(self) -> None:
        self.shares._release(self)

    def __enter__(self) -> Share:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Shares:
    """Counts the streams held, per kind and per user, against the caps."""

    def __init__(
        self, streams: int, per_user: dict[str, int], per_kind: dict[str, int] | None = None, reserved: int = 0
    ) -> None:
        self.streams = max(1, streams)
        self.per_user = dict(per_user)
        self.per_kind = dict(per_kind or {})
        self.reserved = reserved
        self._held: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def take(self, kind: str, user: str) -> Share:
        """A share for one stream of `kind` by `user`; ShareRefused when a cap is reached."""
        with self._lock:
            mine = self._held[(kind, user)]
            cap = self.per_user.get(kind)
            if cap is not None and mine >= cap:
                raise ShareRefused(
                    f"You already have {_words(kind, mine)} open, the most one person may have. "
                    f"Close one (another tab or window), then try again."
                )
            kind_total = sum(n for (k, _), n in self._held.items() if k == kind)
            if kind in self.per_kind and kind_total >= self.per_kind[kind]:
                raise ShareRefused(
                    f"Too many open {KIND_WORDS.get(kind, (kind, kind))[1]} ({self.per_kind[kind]}); "
                    f"open now: {self._holders(kind)}. Close one (or ask), then try again."
                )
            total = sum(self._held.values())
            if total >= self.streams:
                raise ShareRefused(
                    f"The server is streaming as much as it may ({self._holders(None)}); "
                    f"{self.reserved} threads stay free for pages. Try again when one ends."
                )
            self._held[(kind, user)] += 1
            return Share(self, kind, user)

    def _release(self, share: Share) -> None:
        with self._lock:
            if share.released:
                return
            share.released = True
            key = (share.kind, share.user)
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    def _holders(self, kind: str | None) -> str:
        """'alice: 30 live log views; bob: 2 downloads', most first."""
        per_user: dict[str, list[str]] = {}
        for (k, user), n in sorted(self._held.items(), key=lambda item: -item[1]):
            if kind is None or k == kind:
                per_user.setdefault(user, []).append(_words(k, n))
        return "; ".join(f"{user}: {', '.join(parts)}" for user, parts in per_user.items()) or "nobody"

    def held(self, kind: str | None = None, user: str | None = None) -> int:
        with self._lock:
            return sum(
                n for (k, u), n in self._held.items() if (kind is None or k == kind) and (user is None or u == user)
            )
