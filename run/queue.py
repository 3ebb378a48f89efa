"""A first-come-first-served lock with a bounded line: the engine's one llama.cpp context.

threading.Lock wakes waiters in no set order and lets any number wait. Here requests get the
model in the order they arrived, and when `max_waiting` are already in line a new one is turned
away at once (QueueFullError: the API's 503 with Retry-After) instead of holding a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class QueueFullError(RuntimeError):
    """The line is full; `waiting` requests are ahead."""

    def __init__(self, waiting: int):
        super().__init__(f"{waiting} requests are already waiting for the model")
        self.waiting = waiting


def would_time_out(ahead: int, mean_s: float, need_s: float, left_s: float) -> bool:
    """Whether `ahead` requests of `mean_s` seconds each, then the `need_s` a first draft of its
    own needs, take longer than the `left_s` a newcomer has: it then gets a 503 with Retry-After
    at once, not a 504 after waiting out its timeout. Nobody ahead: it runs, whatever the estimate."""
    return ahead > 0 and ahead * mean_s + need_s > left_s


class ServiceTimes:
    """What recent requests spent with the model, to judge the line by.

    `mean_s`: the mean seconds a request held the model, revisions included: the work each
    request ahead is likely to take. `need_s`: the longest recent first draft: what a request must
    have left when it reaches the model, since only its first draft is owed to it (revisions stop
    when time runs short). Until a request has finished, both are `prior_s`: the first burst is
    judged by a guess, not waved through with no estimate at all.
    """

    def __init__(self, prior_s: float, window: int = 32):
        if prior_s <= 0 or window < 1:
            raise ValueError(f"ServiceTimes needs prior_s > 0 and window >= 1, got {prior_s}, {window}")
        self.prior_s = prior_s
        self._held: deque[float] = deque(maxlen=window)
        self._first: deque[float] = deque(maxlen=window)

    def add(self, held_s: float, first_draft_s: float | None) -> None:
        """One request's seconds with the model and its first draft's (None: it never drafted)."""
        self._held.append(held_s)
        if first_draft_s is not None:
            self._first.append(first_draft_s)

    @property
    def measured(self) -> bool:
        return bool(self._held)

    @property
    def mean_s(self) -> float:
        return sum(self._held) / len(self._held) if self._held else self.prior_s

    @property
    def need_s(self) -> float:
        return max(self._first) if self._first else self.prior_s


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

    def acquire(self, timeout: float | None = None, *, until: Callable[[], float] | None = None) -> bool:
        """True once this caller holds the lock; False after `timeout` seconds in line, or once
        the clock passes `until()` (a time.monotonic() deadline read again at every wake-up, so
        a waiter can leave earlier when an estimate it depends on grows)."""
        with self._cond:
            if not self._held and not self._line:
                self._held = True
                return True
            if self.max_waiting and len(self._line) >= self.max_waiting:
                raise QueueFullError(len(self._line))
            ticket = object()
            self._line.append(ticket)
            fixed = None if timeout is None else time.monotonic() + timeout
            try:
                while True:  # the clock first: one whose time is up leaves even when it is next
                    ends = [end for end in (fixed, until() if until else None) if end is not None]
                    left = min(ends) - time.monotonic() if ends else None
                    if left is not None and left <= 0:
                        return False
                    if not self._held and self._line[0] is ticket:
                        self._held = True
                        return True
                    self._cond.wait(left)
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
