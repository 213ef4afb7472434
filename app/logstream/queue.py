"""The bounded hand-over between reader threads and one WebSocket: a slow client costs at most
MAX_ITEMS lines / MAX_BYTES of memory. History (tail) waits for room, so it is never dropped.
Live lines wait too, but only briefly (put_many's `wait`): the engine keeps what we have not read
yet, so a client that keeps up loses nothing even when a flood outruns one send; a client that
does not take anything for that long loses lines and is told how many in place ("N skipped").

An item may stand for several lines (a LineRun: its `count`); the caps and the skip counts are in
lines, not items."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

MAX_ITEMS = 5000
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Skipped:
    count: int


class LineQueue:
    def __init__(self, max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque = deque()  # (item, size in bytes, lines)
        self._bytes = 0
        self._lines = 0
        self._skipped = 0
        self._cond = threading.Condition()
        self._consumer_waiting = False
        self._want = 1  # lines the waiting consumer wants before it is woken (see wait_for)
        self._producers_waiting = 0
        self.closed = False
        self.total_skipped = 0
        self._stalled = False  # a live put found no room in time; live puts drop until a get

    def _full(self, size: int, lines: int = 1) -> bool:
        return bool(self._items) and (self._lines + lines > self.max_items or self._bytes + size > self.max_bytes)

    def put(self, item, size: int = 64, block: bool = False, force: bool = False) -> bool:
        """Queue item; when full, wait (block), take it anyway (force: notices), or drop and count."""
        with self._cond:
            if self.closed:
                return False
            if not force and self._full(size):
                if not block:
                    self._skipped += 1
                    self.total_skipped += 1
                    return False
                self._producers_waiting += 1
                try:
                    while not self.closed and self._full(size):
                        self._cond.wait(0.5)
                finally:
                    self._producers_waiting -= 1
                if self.closed:
                    return False
            if self._skipped:
                self._items.append((Skipped(self._skipped), 32, 0))
                self._skipped = 0
            self._items.append((item, size, 1))
            self._bytes += size
            self._lines += 1
            if self._consumer_waiting and (force or self._lines >= self._want):
                self._cond.notify_all()
            return True

    def put_many(self, items: list, sizes: list[int], wait: float = 0.0, counts: list[int] | None = None) -> int:
        """Queue items in order, each waiting at most until `wait` seconds after the call for room;
        what finds no room by then is dropped and counted. Once that happened, later puts do not wait
        until the reader takes something: a stalled reader costs the producer one wait, not one per
        read, and gets the live edge (and the count of what it missed) when it comes back.
        counts: the lines each item stands for (1 each when None). Returns how many were queued."""
        with self._cond:
            if self.closed:
                return 0
            if self._stalled:
                wait = 0.0
            deadline = None
            queued = 0
            n = len(items)
            while queued < n:
                size = sizes[queued]
                lines = counts[queued] if counts is not None else 1
                if self._full(size, lines):
                    if deadline is None:
                        deadline = time.monotonic() + wait
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        if self._consumer_waiting:
                            self._cond.notify_all()
                        self._producers_waiting += 1
                        try:
                            self._cond.wait(remaining)
                        finally:
                            self._producers_waiting -= 1
                        if self.closed:
                            return queued
                        continue
                    dropped = sum(counts[queued:]) if counts is not None else n - queued
                    self._stalled = True
                    self._skipped += dropped
                    self.total_skipped += dropped
                    break
                if self._skipped:
                    self._items.append((Skipped(self._skipped), 32, 0))
                    self._skipped = 0
                self._items.append((items[queued], size, lines))
                self._bytes += size
                self._lines += lines
                queued += 1
            if self._consumer_waiting and self._lines >= self._want:
                self._cond.notify_all()
            return queued

    def get_batch(self, max_items: int = 2000, max_bytes: int = 1024 * 1024, wait: float = 0.5) -> list:
        """Queued items up to max_items lines / max_bytes (at least one item), waiting up to `wait`
        seconds for the first."""
        with self._cond:
            deadline = time.monotonic() + wait
            while not self._items and not self._skipped and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._consumer_waiting = True
                try:
                    self._cond.wait(remaining)
                finally:
                    self._consumer_waiting = False
            batch = []
            taken = 0
            lines = 0
            self._stalled = False
            items = self._items
            while items and (not batch or (lines + items[0][2] <= max_items and taken + items[0][1] <= max_bytes)):
                item, size, n = items.popleft()
                self._bytes -= size
                self._lines -= n
                taken += size
                lines += n
                batch.append(item)
            if self._skipped and not self._items:
                batch.append(Skipped(self._skipped))
                self._skipped = 0
            if self._producers_waiting:
                self._cond.notify_all()
            return batch

    def wait_for(self, lines: int, timeout: float) -> None:
        """Wait up to timeout until at least `lines` lines are queued (a notice or the queue
        closing ends the wait too): the reader's pause between frames, cut short by a flood so the
        queue never fills while the reader sleeps. Producers wake it once, not once per put."""
        with self._cond:
            deadline = time.monotonic() + timeout
            self._want = lines
            try:
                while self._lines < lines and not self.closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._consumer_waiting = True
                    try:
                        self._cond.wait(remaining)
                    finally:
                        self._consumer_waiting = False
            finally:
                self._want = 1

    def __len__(self) -> int:
        """Lines (and notices) waiting."""
        with self._cond:
            return len(self._items)

    @property
    def waiting(self) -> int:
        """Lines waiting (a hint, read without the lock)."""
        return self._lines

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._items.clear()
            self._bytes = 0
            self._lines = 0
            self._cond.notify_all()
