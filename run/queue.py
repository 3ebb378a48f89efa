"""A first-come-first-served lock with a bounded line: the engine's one llama.cpp context.

threading.Lock wakes waiters in no set order and lets any number wait. Here requests get the
model in the order they arrived, and when `max_waiting` are already in line a new one is turned
away at once (QueueFullError: the API's 503 with Retry-After) instead of holding a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class QueueFullError(RuntimeError):
    """The line is full; `waiting` requests are ahead."""

    def __init__(self, waiting: int):
        super().__init__(f"{waiting} requests are already waiting for the model")
        self.waiting = waiting


def would_time_out(ahead: int, mean_s: float, left_s: float) -> bool:
    """Whether `ahead` requests of `mean_s` seconds each take longer than the `left_s` a newcomer
    has: it then gets a 503 with Retry-After at once, not a 504 after waiting out its timeout."""
    return ahead > 0 and mean_s > 0 and ahead * mean_s > left_s


class FifoLock:
    """acquire(timeout) / release / `with`, granted in arrival order; max_waiting 0 is unbounded."""

    def __init__(self, max_waiting: int = 0):
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._held = False
        self._line: deque[object] = deque()

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def ahead(self) -> int:
        """Requests a newcomer would wait for: the one holding the lock and those in line."""
        return len(self._line) + self._held

    def acquire(self, timeout: float | None = None) -> bool:
        """True once this caller holds the lock; False after `timeout` seconds in line."""
        with self._cond:
            if not self._held and not self._line:
                self._held = True
                return True
            if self.max_waiting and len(self._line) >= self.max_waiting:
                raise QueueFullError(len(self._line))
            ticket = object()
            self._line.append(ticket)
            end = None if timeout is None else time.monotonic() + timeout
            try:
                while self._held or self._line[0] is not ticket:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                self._held = True
                return True
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()  # the next in line may be first now

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self) -> FifoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
