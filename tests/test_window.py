"""The delivery window of one group partition (storage/window.py), rule by rule of SPEC §6.

These drive the pure state machine with explicit clocks; the group tests
through HTTP run the same rules on every backend.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec
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


# -- counters: each message counted once, whatever the stores show ------------------


@pytest.mark.parametrize("guarantee", ["at_most_once", "at_least_once", "exactly_once"])
def test_a_key_scanned_twice_is_leased_and_counted_once(guarantee: str) -> None:
    """A scan that shows a message twice (two hour buckets, a repeated page) leases it once."""
    window = w.load(None)
    twice = [KEYS[0], KEYS[0], KEYS[1], KEYS[1]]
    leased, _ = w.claim(window, 1, twice, rules(guarantee), 0, 10, None)
    assert [c.key for c in leased] == KEYS[:2]
    assert window.counters.delivered == 2
    assert window.counters.acknowledged == (2 if guarantee == "at_most_once" else 0)
    assert len(window.records) == (0 if guarantee == "at_most_once" else 2)


def test_a_key_behind_the_start_is_never_leased_again() -> None:
    """A scan that shows a message behind the start (done) does not lease or count it again."""
    r = rules("at_most_once")
    window = w.load(None)
    claim(window, r, now=0, limit=3)
    assert window.start == KEYS[3] and window.counters.acknowledged == 3
    leased, _ = w.claim(window, 1, KEYS[:5], r, 10, 10, None)  # KEYS[:3] are behind the start
    assert [c.key for c in leased] == KEYS[3:5]
    assert window.counters.acknowledged == 5


class Lineage:
    """A window row as Cassandra keeps it: versions, each written by compare-and-set on the last."""

    def __init__(self) -> None:
        self.blobs = [w.dump(w.load(None))]
        self.leased: list[list[MessageKey]] = [[]]  # what each landed version leased

    def read(self, behind: int = 0) -> tuple[int, bytes]:
        """A replica's view: the latest version, or one ``behind`` it (a lagging replica)."""
        version = max(0, len(self.blobs) - 1 - behind)
        return version, self.blobs[version]

    def cas(self, version: int, blob: bytes, leased: list[MessageKey]) -> bool:
        if version != len(self.blobs) - 1:
            return False
        self.blobs.append(blob)
        self.leased.append(leased)
        return True


@pytest.mark.parametrize("seed", range(60))
def test_at_most_once_counts_each_landed_lease_once_under_lagging_reads_and_unknown_writes(
    seed: int,
) -> None:
    """Issue 9's chaos counter, modelled on the pure rule with Cassandra's protocol around it.

    Claims read a window that may lag (a replica behind), scan messages that may be
    missing (a lagging replica, a late commit), and write by compare-and-set on the
    version. A write's outcome may be unknown: settled by a serial read (the latest
    version: ours or not), else retried from it; and a write reported "not applied"
    may still land later, as Paxos completing an accepted proposal does, but only on
    the version it was computed from. Whatever happens, no message is leased twice
    and ``acknowledged`` (and ``delivered``) equals the messages leased by the
    versions that landed; a claim answers only with leases that landed.
    """
    rng = random.Random(seed)
    r = rules("at_most_once")
    keys = [
        MessageKey(2000 + i // 3, bytes([i % 3 * 0x60, 0, 0, 0, 0, 0, 0, i])) for i in range(40)
    ]
    visible_at = {
        k: i // 2 + (rng.randrange(8) if rng.random() < 0.15 else 0) for i, k in enumerate(keys)
    }
    lineage = Lineage()
    delayed: list[tuple[int, bytes, list[MessageKey]]] = []
    answered: list[MessageKey] = []

    def scan(window: w.Window, step: int, limit: int) -> list[MessageKey]:
        """From the start, with gaps; now and then from before it (the rule leaves those out)."""
        start = window.start
        seen = [k for k in keys if visible_at[k] <= step and rng.random() > 0.2]
        if rng.random() < 0.8:
            seen = [k for k in seen if start is None or k >= start]
        return seen[: w.scan_size(window, limit)]

    def attempt(version: int, blob: bytes, step: int, limit: int) -> tuple[bytes, list[MessageKey]]:
        window = w.load(blob)
        leased, _ = w.claim(window, 1, scan(window, step, limit), r, step, limit, None)
        return w.dump(window), [c.key for c in leased]

    for step in range(60):
        if delayed and rng.random() < 0.3:  # a proposal completed later, on its own version only
            lineage.cas(*delayed.pop(rng.randrange(len(delayed))))
        limit = rng.randint(1, 3)
        version, blob = lineage.read(behind=rng.choice([0, 0, 0, 1, 2]))
        for _ in range(32):  # windows.Windows._change
            new, leased = attempt(version, blob, step, limit)
            if new == blob:
                break
            if rng.random() < 0.25:  # outcome unknown
                if rng.random() < 0.5:
                    lineage.cas(version, new, leased)
                else:
                    delayed.append((version, new, leased))
                latest, _ = lineage.read()
                if lineage.leased[latest] is leased:  # the serial read shows our own writer id
                    answered += leased
                    break
            elif lineage.cas(version, new, leased):
                answered += leased
                break
            version, blob = lineage.read()  # SERIAL, after a lost race
    for late in delayed:
        lineage.cas(*late)
    landed = [k for leased in lineage.leased for k in leased]
    assert len(landed) == len(set(landed)), "a message leased twice"
    final = w.load(lineage.read()[1])
    assert final.counters.acknowledged == final.counters.delivered == len(landed)
    assert set(answered) <= set(landed) and len(answered) == len(set(answered))


class Partition:
    """One partition's stored messages as SQLite keeps them: keys, each with its expiry."""

    def __init__(self) -> None:
        self.expiry: dict[MessageKey, int] = {}

    def scan(
        self, since: MessageKey | None, size: int, now: int
    ) -> tuple[list[MessageKey], list[MessageKey]]:
        """(unexpired, expired) keys at or after ``since``, ascending, ``size`` at most."""
        keys = sorted(k for k in self.expiry if since is None or k >= since)[:size]
        return [k for k in keys if self.expiry[k] > now], [k for k in keys if self.expiry[k] <= now]

    def scanner(
        self, now: int
    ) -> Callable[[MessageKey | None, int, bool], tuple[list[MessageKey], list[MessageKey]]]:
        """:meth:`scan` at ``now``, as ``window.claim_from`` calls it."""
        return lambda since, size, frontier: self.scan(since, size, now)


def frontier_run(seed: int, guarantee: str, mortal: bool) -> None:
    """Feed two windows the same operations: ``fast`` claims from its frontier, ``slow``
    scans from its start every time. Operations: posts (new keys after all others), PUT by
    id behind them (the frontier lowered as sqlite/groups.py does), deletions, acks,
    releases with and without a delay, extensions, leases that end, a cap on leases in
    flight, max_deliveries, ordered groups, and seeks.

    Without ``mortal`` no leased message expires or is deleted, and both lease the same
    messages with the same receipts and end with the same window. With it, a lease whose
    message vanished is noticed later from the frontier (when the lease ends) than from
    the start (at the next claim), so only the rules are checked: a claim leases stored,
    unexpired messages, never one under another live lease, and counts each lease.
    """
    rng = random.Random(seed)
    r = rules(
        guarantee,
        lease_ms=rng.choice([50, 200]),
        max_deliveries=rng.choice([0, 0, 3]),
        ordered=rng.random() < 0.2,
        max_in_flight=rng.choice([8, 100]),
    )
    stored = Partition()
    fast, slow = w.load(None), w.load(None)
    receipts: list[w.Receipt] = []
    live: dict[MessageKey, int] = {}  # fast's leases: key -> until
    handed = 0
    ts = 1000
    now = 0
    for _ in range(300):
        now += rng.randrange(0, 30)
        op = rng.random()
        if op < 0.25:  # post
            for _ in range(rng.randint(1, 4)):
                ts += rng.randint(1, 3)
                ttl = rng.choice([100_000, 100_000, 400]) if mortal else 100_000
                stored.expiry[MessageKey(ts, bytes(8))] = now + ttl
        elif op < 0.3 and stored.expiry:  # PUT by id: a new key between stored ones
            key = MessageKey(rng.randint(1000, ts), bytes([1, *range(7)]))
            if key not in stored.expiry:
                stored.expiry[key] = now + 100_000
                w.lower(fast, key)
        elif op < 0.35:  # delete messages (never leased ones only, unless mortal)
            recorded = {(x.ts, x.tail) for x in [*fast.records, *slow.records]}
            for key in rng.sample(sorted(stored.expiry), min(2, len(stored.expiry))):
                behind = fast.start is not None and key < fast.start
                if mortal or not (behind or key in recorded):
                    del stored.expiry[key]
        elif op < 0.7:  # claim
            limit = rng.randint(1, 6)
            got, _ = w.claim_from(fast, 1, stored.scanner(now), r, now, limit, None)
            for c in got:
                assert stored.expiry.get(c.key, 0) > now, "leased a message not stored"
                assert live.get(c.key, 0) <= now, "leased while another lease is live"
                if guarantee != "at_most_once":
                    live[c.key] = now + r.lease_ms
            handed += len(got)
            alive, gone = stored.scan(slow.start, w.scan_size(slow, limit), now)
            other, _ = w.claim(slow, 1, alive, r, now, limit, None, gone)
            if not mortal:
                assert got == other
            receipts += [c.receipt for c in got]
        elif op < 0.95 and receipts:  # settle some
            chosen = rng.sample(receipts, min(len(receipts), rng.randint(1, 4)))
            action = rng.choice(["ack", "ack", "release", "extend"])
            seconds = rng.choice([0, 0, 1])
            one = w.settle(fast, chosen, r, now, action, seconds)
            for receipt in one[0]:
                if action != "extend":
                    live.pop(receipt.key, None)
                else:
                    live[receipt.key] = now + seconds * 1000
            two = w.settle(slow, chosen, r, now, action, seconds)
            if not mortal:
                assert one == two
            receipts = [c for c in receipts if c not in chosen or rng.random() < 0.3]
        elif op > 0.98:  # seek back to the beginning
            w.seek(fast, None)
            w.seek(slow, None)
            receipts, live = [], {}
        if not mortal:
            assert fast.next_token == slow.next_token
            # The same place: a start just after the last done message, or at the next one
            # stored (a scan that read past it), leaves no stored message between the two.
            if fast.start != slow.start:
                low, high = sorted([fast.start, slow.start], key=lambda k: (k is not None, k))
                assert high is not None
                assert not [k for k in stored.expiry if (low is None or k >= low) and k < high]
    assert fast.counters.delivered == handed
    for window in (fast, slow):  # as a state read does: from the start
        alive, gone = stored.scan(window.start, w.scan_size(window, 0), now)
        w.tidy(window, alive, r, now, gone)
    if not mortal:
        assert fast.counters == slow.counters
        assert fast.records == slow.records


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once", "at_most_once"])
def test_claims_from_the_frontier_lease_what_claims_from_the_start_do(
    seed: int, guarantee: str
) -> None:
    """The frontier (SQLite) is only a shortcut: see :func:`frontier_run`."""
    frontier_run(seed, guarantee, mortal=False)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once", "at_most_once"])
def test_claims_from_the_frontier_keep_the_rules_when_leased_messages_vanish(
    seed: int, guarantee: str
) -> None:
    frontier_run(seed, guarantee, mortal=True)


def test_when_a_thousand_leases_end_at_once_a_claim_reads_as_many_as_it_leases() -> None:
    """Consumers that die leave every lease to end together: a claim from the frontier then
    scans from the first lease that ended as far as the ``limit`` it takes, not past every
    record in flight, and takes them oldest first; a later claim takes the next ones."""
    stored = Partition()
    keys = [MessageKey(1000 + i, bytes(8)) for i in range(1200)]
    for key in keys:
        stored.expiry[key] = 10**9
    r = rules("at_least_once", lease_ms=100, max_in_flight=10_000)
    window = w.load(None)
    sizes: list[int] = []

    def scan(
        since: MessageKey | None, size: int, _: bool
    ) -> tuple[list[MessageKey], list[MessageKey]]:
        sizes.append(size)
        return stored.scan(since, size, now)

    now = 0
    first, _ = w.claim_from(window, 1, scan, r, now, 1000, None)
    assert [c.key for c in first] == keys[:1000]
    now = 500  # every lease has ended
    sizes.clear()
    again, _ = w.claim_from(window, 1, scan, r, now, 100, None)
    assert [c.key for c in again] == keys[:100] and sizes == [101]
    sizes.clear()
    more, _ = w.claim_from(window, 1, scan, r, now, 100, None)
    assert [c.key for c in more] == keys[100:200] and sizes == [101]
    assert all(c.deliveries == 2 for c in [*again, *more])


def test_receipts_accepted_behind_the_start_are_remembered_ten_minutes_at_most_1000() -> None:
    """A retried acknowledgement succeeds again after the start moved past its message,
    while its receipt is remembered: for RECENT_MS, the last RECENT_MAX of a window."""
    r = rules("exactly_once", max_in_flight=5000)
    keys = [
        MessageKey(5000 + i, bytes([0x80, 0, 0, 0, 0, 0, i >> 8, i & 0xFF])) for i in range(1500)
    ]
    window = w.load(None)
    leased, _ = w.claim(window, 1, keys, r, 0, 1500, None)
    receipts = [c.receipt for c in leased]
    assert w.settle(window, receipts, r, 10, "ack")[1] == []
    w.claim(window, 1, keys, r, 20, 10, None)  # all done: the start moves past them
    assert window.records == [] and window.start == w.successor(keys[-1])
    assert len(list(w.remembered(window))) == w.RECENT_MAX  # the last 1000
    kept, dropped = receipts[-1], receipts[0]
    assert w.settle(window, [kept, dropped], r, 30, "ack")[:2] == ([kept], [dropped])
    again = w.load(w.dump(window))  # the packed entries survive the round trip
    assert w.settle(again, [kept], r, 30, "ack")[0] == [kept]
    w.claim(window, 1, [], r, 20 + w.RECENT_MS, 10, None)  # ten minutes on: forgotten
    assert list(w.remembered(window)) == []
    assert w.settle(window, [kept], r, 30 + w.RECENT_MS, "ack")[1] == [kept]


def test_windows_stored_with_remembered_receipts_as_arrays_still_load() -> None:
    """Windows written before the receipts were packed hold them as a list of arrays."""
    window = w.load(None)
    window.begin_at(KEYS[5])
    shape = msgspec.to_builtins(window, builtin_types=(bytes,))
    shape[5] = [[KEYS[1].ts, KEYS[1].tail, 7, 100], [KEYS[2].ts, b"short", 8, 100]]
    loaded = w.load(msgspec.msgpack.encode(shape[:-2]))  # and before the frontier
    assert list(w.remembered(loaded)) == [(KEYS[1].ts, KEYS[1].tail, 7, 100)]
    assert loaded.start == KEYS[5] and loaded.frontier is None
    receipt = w.Receipt(1, KEYS[1], 0, 7)
    assert w.settle(loaded, [receipt], rules(), 200, "ack")[0] == [receipt]
