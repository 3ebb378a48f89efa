"""The engine's lock: first come, first served, with a bounded line."""

from __future__ import annotations

import threading
import time

import pytest

from run.queue import FifoLock, QueueFullError


def test_waiters_get_the_lock_in_arrival_order():
    lock, order = FifoLock(), []
    lock.acquire()

    def wait(name: str) -> None:
        with lock:
            order.append(name)

    threads = []
    for name in "abcde":
        threads.append(threading.Thread(target=wait, args=(name,)))
        threads[-1].start()
        while lock.waiting < len(threads):  # each is in line before the next arrives
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == list("abcde")


def test_a_full_line_turns_the_next_away_at_once_and_a_timeout_leaves_the_line():
    lock = FifoLock(max_waiting=1)
    lock.acquire()
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=0.5))
    waiter.start()
    while lock.waiting < 1:
        time.sleep(0.001)
    with pytest.raises(QueueFullError, match="1 requests are already waiting"):
        lock.acquire(timeout=5)
    waiter.join(5)  # it timed out: False, and out of the line
    assert lock.waiting == 0
    assert lock.acquire(timeout=0.01) is False  # still held by the first
    lock.release()
    assert lock.acquire(timeout=0.01) is True
