"""The engine's lock: first come, first served, with a bounded line."""

from __future__ import annotations

import threading
import time

import pytest

from run.queue import FifoLock, QueueFullError, ServiceTimes, TicketError, Tickets, would_time_out


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


def test_a_waiter_leaves_when_a_moving_deadline_passes():
    lock, leave = FifoLock(), [time.monotonic() + 60]
    lock.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(until=lambda: leave[0])))
    waiter.start()
    while lock.waiting < 1:
        time.sleep(0.001)
    leave[0] = time.monotonic()  # the estimate grew: it should go now, not in a minute
    lock.release()  # the release wakes it; it is next, but its time is up
    waiter.join(5)
    assert got == [False] and lock.waiting == 0
    assert lock.acquire(timeout=1) is True


def test_service_times_start_from_the_prior_and_then_follow_the_requests():
    times = ServiceTimes(prior_s=30.0, window=3)
    assert not times.measured and times.mean_s == 30.0 and times.need_s == 30.0
    times.add(12.0, 5.0)  # one request: 12 s with the model, its first draft 5 s
    times.add(6.0, None)  # one that never drafted (e.g. refused): it counts for the mean only
    assert times.measured and times.mean_s == 9.0 and times.need_s == 5.0
    for held in (4.0, 4.0, 4.0):  # the window keeps the last 3
        times.add(held, 3.0)
    assert times.mean_s == 4.0 and times.need_s == 3.0
    with pytest.raises(ValueError, match="prior_s > 0"):
        ServiceTimes(prior_s=0)


@pytest.mark.parametrize(
    ("ahead", "mean_s", "need_s", "left_s", "shed"),
    [
        (0, 9.0, 9.0, 1.0, False),  # nobody ahead: it runs at once, whatever the estimate
        (3, 10.0, 8.0, 120.0, False),  # 30 s of work ahead and 8 s of its own, 120 s left
        (3, 30.0, 30.0, 120.0, False),  # the prior (a quarter of the timeout): 120 s exactly fits
        (4, 30.0, 30.0, 120.0, True),  # the fifth of a first burst: a 503, not a 504 later
        (16, 8.0, 8.0, 120.0, True),  # 128 s of work ahead: a 503 now, not a 504 in two minutes
        (14, 8.0, 12.0, 120.0, True),  # 112 s ahead fits, but not with its own first draft
    ],
)
def test_a_request_that_would_time_out_in_line_is_turned_away(ahead, mean_s, need_s, left_s, shed):
    assert would_time_out(ahead, mean_s, need_s, left_s) is shed


def test_a_waiter_with_an_earlier_place_goes_ahead_of_later_arrivals():
    lock, order = FifoLock(), []
    kept = lock.arrival()  # drawn by a request that was turned away and comes back later
    lock.acquire()

    def wait(name: str, place: int | None) -> None:
        lock.acquire(place=place)
        order.append(name)
        lock.release()

    threads = []
    for name, place in (("late-1", None), ("late-2", None), ("kept", kept)):
        threads.append(threading.Thread(target=wait, args=(name, place)))
        threads[-1].start()
        while lock.waiting < len(threads):
            time.sleep(0.001)
    assert lock.ahead_of(kept) == 1  # only the holder: the two in line came after it
    assert lock.ahead_of(lock.arrival()) == 4
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == ["kept", "late-1", "late-2"]


def test_a_free_lock_goes_to_the_earliest_place_not_to_whoever_asks_first():
    lock = FifoLock()
    kept, got = lock.arrival(), []
    lock.acquire()
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=5, place=kept)))
    waiter.start()
    while lock.waiting < 1:
        time.sleep(0.001)
    lock.release()
    # A later arrival may call before the woken waiter runs: it must not take the place (and
    # the waiter keeps the lock, so the later one times out).
    assert lock.acquire(timeout=0.5) is False
    waiter.join(5)
    assert got == [True]


def test_a_ticket_keeps_its_number_once_and_only_while_it_is_good():
    tickets = Tickets(ttl_s=600, secret=b"k" * 32)
    ticket = tickets.issue(7)
    assert tickets.claim(ticket) == (7, None)
    number, why = tickets.claim(ticket)  # a second request with the same ticket
    assert number is None and "in line or was served" in why
    again = tickets.issue(7)  # turned away again: the number is free for its retry
    assert tickets.claim(again) == (7, None)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda t: t.replace("7.", "1.", 1), "signature does not match"),  # an earlier number
        (lambda t: Tickets(secret=b"o" * 32).issue(7), "signature does not match"),  # a restart
    ],
)
def test_a_forged_or_foreign_ticket_is_not_honoured(change, reason):
    tickets = Tickets(secret=b"k" * 32)
    number, why = tickets.claim(change(tickets.issue(7)))
    assert number is None and reason in why


def test_an_expired_ticket_is_not_honoured():
    tickets = Tickets(ttl_s=0.0, secret=b"k" * 32)
    ticket = tickets.issue(3)
    time.sleep(1.1)  # issue times are whole seconds
    number, why = tickets.claim(ticket)
    assert number is None and "expired" in why


@pytest.mark.parametrize(
    "ticket", ["", "abc", "1.2", "1.2.3", "١.2.0123456789abcdef", "9" * 19 + ".1.0123456789abcdef"]
)
def test_a_ticket_not_in_the_format_is_an_input_error_that_echoes_nothing(ticket):
    with pytest.raises(TicketError, match="not a ticket this server writes") as error:
        Tickets().claim(ticket)
    assert not ticket or ticket not in str(error.value)
