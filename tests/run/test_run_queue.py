"""The engine's lock: first come, first served, with a bounded line."""

from __future__ import annotations

import threading
import time

import pytest

from run.queue import FifoLock, QueueFullError, would_time_out


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


def test_ahead_counts_the_holder_and_the_line():
    lock = FifoLock()
    assert lock.ahead == 0
    lock.acquire()
    assert lock.ahead == 1
    waiter = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
    waiter.start()
    while lock.waiting < 1:
        time.sleep(0.001)
    assert lock.ahead == 2
    lock.release()
    waiter.join(5)
    assert lock.ahead == 0


@pytest.mark.parametrize(
    ("ahead", "mean_s", "left_s", "shed"),
    [
        (0, 9.0, 1.0, False),  # nobody ahead: it runs at once, whatever the estimate
        (3, 0.0, 1.0, False),  # no estimate yet (the first requests): wait in line
        (3, 10.0, 120.0, False),  # 30 s of work ahead, 120 s left
        (16, 8.0, 120.0, True),  # 128 s of work ahead: a 503 now, not a 504 in two minutes
    ],
)
def test_a_request_that_would_time_out_in_line_is_turned_away(ahead, mean_s, left_s, shed):
    assert would_time_out(ahead, mean_s, left_s) is shed
