"""A first-come-first-served lock with a bounded line: the engine's one llama.cpp context.

threading.Lock wakes waiters in no set order and lets any number wait. Here requests get the
model in the order they arrived, and when `max_waiting` are already in line a new one is turned
away at once (QueueFullError: the API's 503 with Retry-After) instead of holding a worker thread.

A request turned away keeps its place: its 503 carries a signed ticket with its arrival number
(`Tickets`), and the retry that brings it back goes in line by that number, ahead of every later
arrival. Without it, a client waiting out its Retry-After loses each freed place to whoever asks
first, and under overload can lose it every time.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from run.boundary import InputError

# number.issued.signature, ASCII digits and hex only: nothing else is parsed or echoed.
_TICKET = re.compile(r"(\d{1,18})\.(\d{1,12})\.([0-9a-f]{16})", re.ASCII)


class TicketError(InputError):
    """A Stepsmith-Ticket header that is not in the format this server writes."""


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
    """acquire(timeout) / release / `with`, granted by arrival number; max_waiting 0 is unbounded.

    A caller may bring the number it drew earlier (`place`, from `arrival()`): it then goes in
    line ahead of everyone who arrived after it. Without one it draws a new number: plain FIFO.
    """

    def __init__(self, max_waiting: int = 0):
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._held = False
        self._line: list[int] = []  # the places of the waiters
        self._numbers = itertools.count()

    def arrival(self) -> int:
        """The next arrival number: later than every one drawn before."""
        with self._cond:
            return next(self._numbers)

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def ahead(self) -> int:
        """Requests a newcomer would wait for: the one holding the lock and those in line."""
        return len(self._line) + self._held

    def ahead_of(self, place: int) -> int:
        """Requests one with this arrival number would wait for: the holder, and those in line
        that arrived before it."""
        with self._cond:
            return sum(p < place for p in self._line) + self._held

    def acquire(
        self,
        timeout: float | None = None,
        *,
        until: Callable[[], float] | None = None,
        place: int | None = None,
    ) -> bool:
        """True once this caller holds the lock; False after `timeout` seconds in line, or once
        the clock passes `until()` (a time.monotonic() deadline read again at every wake-up, so
        a waiter can leave earlier when an estimate it depends on grows). `place`: the arrival
        number it holds (None: a new one)."""
        with self._cond:
            place = next(self._numbers) if place is None else place
            if not self._held and all(place < p for p in self._line):
                self._held = True
                return True
            if self.max_waiting and len(self._line) >= self.max_waiting:
                raise QueueFullError(len(self._line))
            self._line.append(place)
            fixed = None if timeout is None else time.monotonic() + timeout
            try:
                while True:  # the clock first: one whose time is up leaves even when it is next
                    ends = [end for end in (fixed, until() if until else None) if end is not None]
                    left = min(ends) - time.monotonic() if ends else None
                    if left is not None and left <= 0:
                        return False
                    if not self._held and place == min(self._line):
                        self._held = True
                        return True
                    self._cond.wait(left)
            finally:
                self._line.remove(place)
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


class Tickets:
    """Signed arrival numbers, so a request turned away keeps its place when it comes back.

    A ticket is "<number>.<issued unix s>.<HMAC-SHA256, 16 hex>" under a secret drawn at start:
    a client cannot forge an earlier number, and a restart voids every ticket. `claim` returns the
    number a ticket holds, or None and why it is not honoured (expired, from an earlier start,
    already in line or served): that request is then a new arrival, and is told so. A ticket that
    is not even in the format is the client's mistake: TicketError, an InputError.
    """

    HEADER = "Stepsmith-Ticket"

    def __init__(self, ttl_s: float = 600.0, secret: bytes | None = None):
        # 10 minutes: longer than any Retry-After a full line of 16 gives on 2 cores, so a
        # polite client's ticket is still good, and short enough that few stay claimed.
        self.ttl_s = ttl_s
        self._secret = secret or secrets.token_bytes(32)
        self._claimed: dict[int, float] = {}  # number -> when its ticket expires
        self._lock = threading.Lock()

    def _mac(self, number: int, issued: int) -> str:
        return hmac.new(self._secret, f"{number}.{issued}".encode(), hashlib.sha256).hexdigest()[:16]

    def issue(self, number: int) -> str:
        """A ticket for this arrival number; the number is free to claim again."""
        issued = int(time.time())
        with self._lock:
            self._claimed.pop(number, None)
        return f"{number}.{issued}.{self._mac(number, issued)}"

    def claim(self, ticket: str) -> tuple[int | None, str | None]:
        """(number, None) if the ticket is honoured, now claimed; else (None, why not)."""
        found = _TICKET.fullmatch(ticket.strip())
        if not found:
            raise TicketError(
                f"the {self.HEADER} header is not a ticket this server writes (number.time.signature);"
                f" send it back exactly as a 503 gave it, or leave it out"
            )
        number, issued = int(found[1]), int(found[2])
        if not hmac.compare_digest(found[3], self._mac(number, issued)):
            return None, "its signature does not match: it is from an earlier start of the server"
        now = time.time()
        if now - issued > self.ttl_s:
            return None, f"it expired {now - issued - self.ttl_s:.0f} s ago"
        with self._lock:
            self._claimed = {n: end for n, end in self._claimed.items() if end > now}
            if number in self._claimed:
                return None, "another request holds it: it is in line or was served"
            self._claimed[number] = issued + self.ttl_s
        return number, None
