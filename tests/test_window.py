"""The delivery window of one group partition (storage/window.py), rule by rule of SPEC §6.

These drive the pure state machine with explicit clocks; the group tests
through HTTP run the same rules on every backend.
"""

from __future__ import annotations

import pytest

from queuey.storage import window as w
from queuey.storage.keys import MessageKey

KEYS = [MessageKey(1000 + i, bytes([0x80, 0, 0, 0, 0, 0, 0, i])) for i in range(10)]


def rules(guarantee: str = "exactly_once", **kw: object) -> w.Rules:
    base: dict[str, object] = {
        "guarantee": guarantee,
        "lease_ms": 1000,
        "max_deliveries": 0,
        "ordered": False,
        "max_in_flight": 100,
    }
    base.update(kw)
    return w.Rules(**base)  # type: ignore[arg-type]


def scanned(window: w.Window, keys: list[MessageKey] = KEYS) -> list[MessageKey]:
    """What a backend's scan from the window's start returns."""
    start = window.start
    return [k for k in keys if start is None or k >= start]


def claim(window: w.Window, r: w.Rules, now: int, limit: int = 10) -> list[w.Claimed]:
    leased, _ = w.claim(window, 1, scanned(window), r, now, limit, None)
    return leased


def test_oldest_first_and_never_twice_while_leased() -> None:
    window = w.load(None)
    first = claim(window, rules(), now=0, limit=3)
    assert [c.key for c in first] == KEYS[:3]
    second = claim(window, rules(), now=10, limit=3)
    assert [c.key for c in second] == KEYS[3:6]
    assert {c.receipt.token for c in first}.isdisjoint({c.receipt.token for c in second})


def test_acknowledged_messages_move_the_start_and_stay_done() -> None:
    window = w.load(None)
    leased = claim(window, rules(), now=0, limit=2)
    accepted, lost, _ = w.settle(window, [c.receipt for c in leased], rules(), 10, "ack")
    assert (len(accepted), lost) == (2, [])
    rest = claim(window, rules(), now=20, limit=10)
    assert [c.key for c in rest] == KEYS[2:]
    assert window.start == KEYS[2]  # the done head is behind the start
    assert len(window.records) == 8


def test_exactly_once_refuses_an_expired_lease_and_accepts_a_retried_ack() -> None:
    window = w.load(None)
    (one, two) = claim(window, rules(), now=0, limit=2)
    accepted, _, _ = w.settle(window, [one.receipt], rules(), 500, "ack")
    assert accepted == [one.receipt]
    claim(window, rules(), now=600, limit=0)  # a later claim compacts the start past it
    again, _, _ = w.settle(window, [one.receipt], rules(), 700, "ack")
    assert again == [one.receipt]  # a retried ack succeeds again, also behind the start
    _, late, _ = w.settle(window, [two.receipt], rules(), 1001, "ack")
    assert late == [two.receipt]


def test_at_least_once_accepts_a_late_ack_until_leased_again() -> None:
    r = rules("at_least_once")
    window = w.load(None)
    (first,) = claim(window, r, now=0, limit=1)
    accepted, _, _ = w.settle(window, [first.receipt], r, 5000, "ack")
    assert accepted == [first.receipt]
    window = w.load(None)
    (first,) = claim(window, r, now=0, limit=1)
    (again,) = claim(window, r, now=5000, limit=1)  # redelivered after the lease ended
    assert again.key == first.key and again.deliveries == 2
    _, lost, _ = w.settle(window, [first.receipt], r, 5001, "ack")
    assert lost == [first.receipt]
    assert window.counters.redelivered == 1


def test_at_most_once_acknowledges_when_it_leases() -> None:
    r = rules("at_most_once")
    window = w.load(None)
    assert [c.key for c in claim(window, r, now=0, limit=2)] == KEYS[:2]
    later = claim(window, r, now=10_000, limit=10)  # long after any lease: never redelivered
    assert [c.key for c in later] == KEYS[2:]
    assert window.counters.acknowledged == 10
    assert w.state(window, 1, 10_000).in_flight == 0


def test_release_with_delay_and_max_deliveries() -> None:
    r = rules("at_least_once", max_deliveries=2)
    window = w.load(None)
    (first,) = claim(window, r, now=0, limit=1)
    accepted, _, doomed = w.settle(window, [first.receipt], r, 10, "release", seconds=5)
    assert (accepted, doomed) == ([first.receipt], [])
    assert [c.key for c in claim(window, r, now=20, limit=1)] == [KEYS[1]]
    (second,) = [c for c in claim(window, r, now=5011, limit=10) if c.key == KEYS[0]]
    assert second.deliveries == 2
    _, _, doomed = w.settle(window, [second.receipt], r, 5020, "release")
    assert doomed == [KEYS[0]]  # a release counts as a failed delivery
    w.dead(window, 1, lettered=True)
    assert KEYS[0] not in [c.key for c in claim(window, r, now=99_999, limit=10)]
    assert window.counters.dead_lettered == 1


def test_extend_keeps_a_lease_and_seek_loses_every_receipt() -> None:
    r = rules()
    window = w.load(None)
    (first,) = claim(window, r, now=0, limit=1)
    extended, _, _ = w.settle(window, [first.receipt], r, 900, "extend", seconds=10)
    assert extended == [first.receipt]
    assert KEYS[0] not in [c.key for c in claim(window, r, now=5000, limit=10)]
    w.seek(window, None)
    _, lost, _ = w.settle(window, [first.receipt], r, 5001, "ack")
    assert lost == [first.receipt]
    again = claim(window, r, now=5002, limit=10)
    assert [c.key for c in again] == KEYS and {c.deliveries for c in again} == {1}


def test_ordered_holds_a_partition_while_anything_is_leased() -> None:
    r = rules(ordered=True)
    window = w.load(None)
    assert [c.key for c in claim(window, r, now=0, limit=2)] == KEYS[:2]
    assert claim(window, r, now=10, limit=2) == []
    assert [c.key for c in claim(window, r, now=2000, limit=1)] == [KEYS[0]]


def test_vanished_messages_leave_the_window() -> None:
    window = w.load(None)
    claim(window, rules(), now=0, limit=3)
    leased, _ = w.claim(window, 1, KEYS[3:], rules(), 5000, 10, None)  # 0..2 expired
    assert [c.key for c in leased] == KEYS[3:]
    assert window.counters.expired == 3


@pytest.mark.parametrize("key", [KEYS[0], MessageKey(5, b"\xff" * 8), MessageKey(5, b"")])
def test_successor_is_just_after(key: MessageKey) -> None:
    after = w.successor(key)
    assert after > key
    assert w.load(w.dump(w.load(None, after))).start == after


def test_max_in_flight_caps_leases() -> None:
    window = w.load(None)
    assert len(claim(window, rules(max_in_flight=4), now=0, limit=10)) == 4
    assert claim(window, rules(max_in_flight=4), now=1, limit=10) == []


def test_expired_messages_are_counted_once_and_done() -> None:
    window = w.load(None)
    leased, _ = w.claim(window, 1, KEYS[2:], rules(), 0, 1, None, expired=KEYS[:2])
    assert [c.key for c in leased] == [KEYS[2]]
    assert window.counters.expired == 2
    assert window.start == KEYS[2]  # the expired head is done
    w.claim(window, 1, KEYS[2:], rules(), 10, 1, None, expired=KEYS[:2])
    assert window.counters.expired == 2


def test_at_least_once_may_ack_its_own_released_message_until_leased_again() -> None:
    r = rules("at_least_once")
    window = w.load(None)
    (first,) = claim(window, r, now=0, limit=1)
    w.settle(window, [first.receipt], r, 10, "release", seconds=5)
    _, lost, _ = w.settle(window, [first.receipt], r, 20, "extend", seconds=5)
    assert lost == [first.receipt]  # the release ended the lease
    accepted, _, _ = w.settle(window, [first.receipt], r, 30, "ack")
    assert accepted == [first.receipt]
    assert KEYS[0] not in [c.key for c in claim(window, r, now=10_000, limit=10)]
    exactly = rules()
    window = w.load(None)
    (first,) = claim(window, exactly, now=0, limit=1)
    w.settle(window, [first.receipt], exactly, 10, "release", seconds=5)
    _, lost, _ = w.settle(window, [first.receipt], exactly, 20, "ack")
    assert lost == [first.receipt]


def test_a_scan_that_misses_a_done_message_does_not_make_it_deliverable() -> None:
    """A replica behind may leave a row out of one scan: done stays done, no second count."""
    r = rules("at_least_once")
    window = w.load(None)
    leased, _ = w.claim(window, 1, KEYS[:3], r, 0, 3, None)
    w.settle(window, [leased[1].receipt], r, 10, "ack")  # done, but not at the head
    w.claim(window, 1, [KEYS[0], KEYS[2]], r, 20, 0, None)  # KEYS[1] missing from this scan
    again, _ = w.claim(window, 1, KEYS[:4], r, 30, 10, None)  # and back in the next
    assert [c.key for c in again] == [KEYS[3]]
    assert window.counters.acknowledged == 1
