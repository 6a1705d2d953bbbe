"""The delivery window of one consumer group in one partition: a pure state machine.

Both backends keep, per (group, partition), one :class:`Window` and change it
only by compare-and-set (SQLite: inside the writer's transaction; Cassandra:
a lightweight transaction on its version), so these functions never see two
writers at once. They take the window, the clock (``now`` in milliseconds,
the server's own) and, for claims, the partition's messages scanned from
the window's ``start``; they change the window in place and say what to do.

Shape (Kafka share groups keep the same): ``start`` is the first key that
may still be pending — every message before it is done. ``records`` hold the
messages after it that were ever leased in this epoch: leased, released
(available again at ``until``), acknowledged or dead. Acknowledging lets a
later claim move ``start`` past every done record at its head, so a group
costs a few records however long the queue. ``epoch`` grows on every seek:
receipts of an earlier epoch are lost. ``recent`` remembers, for ten minutes, the
receipts accepted for messages already behind ``start``, so that a retried
acknowledgement succeeds again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

from queuey.storage.keys import MessageKey

LEASED, RELEASED, ACKED, DEAD, EXPIRED = 0, 1, 2, 3, 4
#: States of a message that is no longer pending.
DONE = (ACKED, DEAD, EXPIRED)
#: How long an accepted receipt behind ``start`` still acknowledges again.
RECENT_MS = 600_000
RECENT_MAX = 1_000


class Record(msgspec.Struct, array_like=True):
    ts: int
    tail: bytes
    state: int
    token: int
    until: int
    """LEASED: when the lease ends; RELEASED: when the message is available again (ms)."""
    deliveries: int
    consumer: str | None = None

    @property
    def key(self) -> MessageKey:
        return MessageKey(self.ts, self.tail)


class Counters(msgspec.Struct, array_like=True):
    delivered: int = 0
    acknowledged: int = 0
    redelivered: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    expired: int = 0


class Window(msgspec.Struct, array_like=True):
    start_ts: int | None = None
    start_tail: bytes = b""
    epoch: int = 0
    next_token: int = 1
    records: list[Record] = msgspec.field(default_factory=list)
    recent: list[tuple[int, bytes, int, int]] = msgspec.field(default_factory=list)
    """(ts, tail, token, accepted at ms) of receipts accepted behind ``start``."""
    counters: Counters = msgspec.field(default_factory=Counters)

    @property
    def start(self) -> MessageKey | None:
        return None if self.start_ts is None else MessageKey(self.start_ts, self.start_tail)

    def begin_at(self, key: MessageKey | None) -> None:
        self.start_ts, self.start_tail = (None, b"") if key is None else key

    def find(self, key: MessageKey) -> Record | None:
        for record in self.records:
            if record.ts == key.ts and record.tail == key.tail:
                return record
        return None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Window)


def dump(window: Window) -> bytes:
    return _encoder.encode(window)


def load(data: bytes | None, start: MessageKey | None = None) -> Window:
    """The stored window, or a fresh one beginning at ``start``."""
    if data is None:
        window = Window()
        window.begin_at(start)
        return window
    return _decoder.decode(data)


def successor(key: MessageKey) -> MessageKey:
    """The smallest key after ``key`` (a position, not necessarily a message)."""
    value = int.from_bytes(key.tail.ljust(8, b"\x00"), "big") + 1
    if value >> 64:
        return MessageKey(key.ts + 1, b"")
    return MessageKey(key.ts, value.to_bytes(8, "big"))


class Receipt(NamedTuple):
    """What a receipt names inside one group incarnation (core signs and encodes it)."""

    partition: int
    key: MessageKey
    epoch: int
    token: int


class Rules(NamedTuple):
    """The group settings the window needs."""

    guarantee: str
    lease_ms: int
    max_deliveries: int
    ordered: bool
    max_in_flight: int


class Claimed(NamedTuple):
    key: MessageKey
    receipt: Receipt
    deliveries: int


def _live(record: Record, now: int) -> bool:
    return (record.state == LEASED and record.until > now) or (
        record.state == RELEASED and record.until > now
    )


def _lease(window: Window, record: Record, rules: Rules, now: int, consumer: str | None) -> None:
    record.state = LEASED
    record.token = window.next_token
    window.next_token += 1
    record.until = now + rules.lease_ms
    record.deliveries += 1
    record.consumer = consumer
    window.counters.delivered += 1
    if record.deliveries > 1:
        window.counters.redelivered += 1
    if rules.guarantee == "at_most_once":  # acknowledged in the write that leases it
        record.state = ACKED
        window.counters.acknowledged += 1


def claim(
    window: Window,
    partition: int,
    scanned: Sequence[MessageKey],
    rules: Rules,
    now: int,
    limit: int,
    consumer: str | None,
    expired: Sequence[MessageKey] = (),
) -> tuple[list[Claimed], list[MessageKey]]:
    """Lease up to ``limit`` available messages, oldest first.

    ``scanned``: the keys of the partition's unexpired messages at or after
    ``start``, ascending, as many as ``scan_size`` asks for; ``expired``: the
    keys of expired ones still stored in that range (counted once, then done).
    Returns what was leased and the keys that reached ``max_deliveries`` (to
    dead-letter or drop: the caller decides which, and counts it with :func:`dead`).

    Each message is leased and counted at most once: a key scanned twice is one
    key, and a key behind ``start`` (done: its record is gone) is left out —
    else ``start`` would move back to it and it would be leased and counted again.
    """
    start = window.start
    scanned = sorted({k for k in scanned if start is None or k >= start})
    expired = sorted(set(expired))
    _forget_vanished(window, sorted([*scanned, *expired]))
    for key in expired:
        if start is not None and key < start:
            continue  # behind the start: done already
        found = window.find(key)
        if found is None:
            window.records.append(Record(key.ts, key.tail, EXPIRED, 0, 0, 0))
        elif found.state in DONE:
            continue
        else:
            found.state = EXPIRED
        window.counters.expired += 1
    by_key = {(r.ts, r.tail): r for r in window.records}
    if rules.ordered and any(_live(r, now) for r in window.records):
        _advance(window, scanned, now)
        return [], []
    in_flight = sum(r.state == LEASED and r.until > now for r in window.records)
    leased: list[Claimed] = []
    doomed: list[MessageKey] = []
    for key in scanned:
        record = by_key.get((key.ts, key.tail))
        if record is not None and (record.state in DONE or _live(record, now)):
            continue
        if (
            record is not None
            and rules.max_deliveries
            and record.deliveries >= rules.max_deliveries
        ):
            record.state = DEAD  # its last lease ended: out of the group, also when not claiming
            doomed.append(key)
            continue
        if len(leased) >= limit or in_flight >= rules.max_in_flight:
            continue  # nothing more to lease; the rest of the scan is only tidied
        if record is None:
            record = Record(key.ts, key.tail, LEASED, 0, 0, 0)
            window.records.append(record)
        _lease(window, record, rules, now, consumer)
        in_flight += record.state == LEASED
        leased.append(
            Claimed(key, Receipt(partition, key, window.epoch, record.token), record.deliveries)
        )
    window.records.sort(key=lambda r: (r.ts, r.tail))
    _advance(window, sorted([*scanned, *expired]), now)
    return leased, doomed


def tidy(
    window: Window,
    scanned: Sequence[MessageKey],
    rules: Rules,
    now: int,
    expired: Sequence[MessageKey] = (),
) -> list[MessageKey]:
    """Bring the window up to date without leasing (before a state read).

    Counts expired messages, ends the leases that reached ``max_deliveries``
    (returned, to dead-letter or drop) and moves ``start``: what a claim
    would do first.
    """
    _, doomed = claim(window, 0, scanned, rules._replace(ordered=False), now, 0, None, expired)
    return doomed


def scan_size(window: Window, limit: int) -> int:
    """How many messages (expired ones included) a claim should scan from ``start``."""
    return limit + len(window.records) + 1


def _forget_vanished(window: Window, scanned: Sequence[MessageKey]) -> None:
    """Drop leases of messages no longer stored (expired or deleted) within the scanned range.

    Done records stay even when a scan does not show their message: a scan that
    misses a row (a replica behind, on Cassandra) must not make a done message
    deliverable again. They leave when ``start`` passes them (``_advance``).
    """
    last = scanned[-1] if scanned else None
    present = {(k.ts, k.tail) for k in scanned}
    kept = []
    for record in window.records:
        inside = last is None or (record.ts, record.tail) <= (last.ts, last.tail)
        if (
            inside
            and record.state in (LEASED, RELEASED)
            and (record.ts, record.tail) not in present
        ):
            window.counters.expired += 1
            continue
        kept.append(record)
    window.records = kept


def _advance(window: Window, scanned: Sequence[MessageKey], now: int) -> None:
    """Move ``start`` past the done messages at its head; remember their accepted receipts."""
    by_key = {(r.ts, r.tail): r for r in window.records}
    done: list[Record] = []
    following: MessageKey | None = None
    for key in scanned:
        record = by_key.get((key.ts, key.tail))
        if record is None or record.state not in DONE:
            following = key
            break
        done.append(record)
    if done:  # nothing done at the head: ``start`` stays where it is (null stays null)
        window.begin_at(following or successor(done[-1].key))
        start = (window.start_ts, window.start_tail)
        behind = [r for r in window.records if (r.ts, r.tail) < start]
        window.records = [r for r in window.records if (r.ts, r.tail) >= start]
        window.recent.extend((r.ts, r.tail, r.token, now) for r in behind if r.state == ACKED)
    window.recent = [e for e in window.recent if e[3] > now - RECENT_MS][-RECENT_MAX:]


def dead(window: Window, count: int, lettered: bool) -> None:
    """Count ``count`` messages that reached max_deliveries: dead-lettered or dropped."""
    if lettered:
        window.counters.dead_lettered += count
    else:
        window.counters.dropped += count


def _accepts(
    window: Window,
    receipt: Receipt,
    rules: Rules,
    now: int,
    action: str,
    index: dict[tuple[int, bytes], Record],
) -> bool:
    """Whether ``receipt`` may acknowledge, release or extend (SPEC §6, by guarantee)."""
    if receipt.epoch != window.epoch:
        return False  # a seek leased everything again
    if rules.guarantee == "at_most_once":
        return True
    record = index.get((receipt.key.ts, receipt.key.tail))
    if record is None:
        behind = window.start is not None and receipt.key < window.start
        return (
            action == "ack"
            and behind
            and any(
                (ts, tail, token) == (*receipt.key, receipt.token)
                for ts, tail, token, _ in window.recent
            )
        )
    if record.token != receipt.token:
        return False  # leased again since
    if record.state == ACKED:
        return action == "ack"  # a retried acknowledgement succeeds again
    if record.state == RELEASED:
        # at_least_once: "accepted unless the message has been leased again since" —
        # released and not yet delivered again, it may still be acknowledged (or
        # released again); its lease is over, so it cannot be extended.
        return rules.guarantee == "at_least_once" and action != "extend"
    if record.state != LEASED:
        return False
    if rules.guarantee == "exactly_once":
        return record.until > now
    return True


def settle(
    window: Window,
    receipts: Iterable[Receipt],
    rules: Rules,
    now: int,
    action: str,
    seconds: int = 0,
) -> tuple[list[Receipt], list[Receipt], list[MessageKey]]:
    """Acknowledge, release (available again after ``seconds``) or extend (by ``seconds``).

    Returns the accepted receipts, the lost ones, and keys that a release
    brought to ``max_deliveries`` (to dead-letter or drop, as for claims).
    """
    accepted: list[Receipt] = []
    lost: list[Receipt] = []
    doomed: list[MessageKey] = []
    index = {(r.ts, r.tail): r for r in window.records}
    for receipt in receipts:
        if not _accepts(window, receipt, rules, now, action, index):
            lost.append(receipt)
            continue
        accepted.append(receipt)
        record = index.get((receipt.key.ts, receipt.key.tail))
        if record is None or rules.guarantee == "at_most_once":
            continue
        if action == "ack" and record.state in (LEASED, RELEASED):
            record.state = ACKED
            window.counters.acknowledged += 1
        elif action == "release":
            record.state = RELEASED
            record.until = now + seconds * 1000
            record.consumer = None
            if rules.max_deliveries and record.deliveries >= rules.max_deliveries:
                record.state = DEAD
                doomed.append(receipt.key)
        elif action == "extend":
            record.until = now + seconds * 1000
    return accepted, lost, doomed


def seek(window: Window, to: MessageKey | None) -> None:
    """Begin again at ``to``: every lease ends, acknowledgements are forgotten."""
    window.begin_at(to)
    window.epoch += 1
    window.records = []
    window.recent = []


class PartitionState(NamedTuple):
    partition: int
    start: MessageKey | None
    in_flight: int
    acked_after_start: int
    consumers: list[str]


def state(window: Window, partition: int, now: int) -> PartitionState:
    live = [r for r in window.records if r.state == LEASED and r.until > now]
    return PartitionState(
        partition,
        window.start,
        len(live),
        sum(r.state in DONE for r in window.records),
        sorted({r.consumer for r in live if r.consumer}),
    )


def done_keys(window: Window) -> set[tuple[int, bytes]]:
    """Keys after ``start`` that are no longer pending (acknowledged, dead or expired)."""
    return {(r.ts, r.tail) for r in window.records if r.state in DONE}
