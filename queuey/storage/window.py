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

The **frontier** (SQLite; Cassandra rescans from ``start``, as rows land late
there): every message stored in [``start``, ``frontier``) has a record, so a
claim needs to scan only from the frontier — the messages after every lease
in flight — and judges the records before it from memory. Otherwise each
claim would scan, and each window hold, the whole run of leases in flight
before finding a new message. A claim scans from ``start`` again when a
record before the frontier is available (its lease ended, its release delay
passed): whether its message is still stored is only known by reading it.
A backend that can store a message behind the frontier (SQLite: PUT by id)
lowers it (:func:`lower`).
"""

from __future__ import annotations

import bisect
import heapq
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, NamedTuple

import msgspec

from queuey.storage.keys import MessageKey

LEASED, RELEASED, ACKED, DEAD, EXPIRED = 0, 1, 2, 3, 4
#: States of a message that is no longer pending.
DONE = (ACKED, DEAD, EXPIRED)
#: How long an accepted receipt behind ``start`` still acknowledges again.
RECENT_MS = 600_000
RECENT_MAX = 1_000


class Record(msgspec.Struct, array_like=True, order=True):
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
    recent: bytes = b""
    """Receipts accepted behind ``start``, oldest first: packed :data:`REMEMBERED` entries
    (ts, tail, token, accepted at ms), not a list of arrays: encoding a window then copies
    them instead of encoding up to a thousand tuples (see :func:`remembered`)."""
    counters: Counters = msgspec.field(default_factory=Counters)
    frontier_ts: int | None = None
    frontier_tail: bytes = b""
    """None: not known, scan from ``start``."""

    @property
    def start(self) -> MessageKey | None:
        return None if self.start_ts is None else MessageKey(self.start_ts, self.start_tail)

    @property
    def frontier(self) -> MessageKey | None:
        if self.frontier_ts is None:
            return None
        return MessageKey(self.frontier_ts, self.frontier_tail)

    def reach(self, key: MessageKey | None) -> None:
        self.frontier_ts, self.frontier_tail = (None, b"") if key is None else key

    def begin_at(self, key: MessageKey | None) -> None:
        self.start_ts, self.start_tail = (None, b"") if key is None else key

    def find(self, key: tuple[int, bytes]) -> Record | None:
        """The record of ``key`` (``records`` are in key order)."""
        records = self.records
        i = _before(records, key)
        if i < len(records) and records[i].ts == key[0] and records[i].tail == key[1]:
            return records[i]
        return None


#: One remembered receipt: the key's ts and 8-byte tail, the lease token, when accepted.
REMEMBERED = struct.Struct(">q8sqq")


class _Earlier(msgspec.Struct, array_like=True):
    """A window as stored before ``recent`` was packed (a list of arrays); read, then packed."""

    start_ts: int | None = None
    start_tail: bytes = b""
    epoch: int = 0
    next_token: int = 1
    records: list[Record] = msgspec.field(default_factory=list)
    recent: list[tuple[int, bytes, int, int]] = msgspec.field(default_factory=list)
    counters: Counters = msgspec.field(default_factory=Counters)
    frontier_ts: int | None = None
    frontier_tail: bytes = b""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Window)
_earlier = msgspec.msgpack.Decoder(_Earlier)


def dump(window: Window) -> bytes:
    return _encoder.encode(window)


def load(data: bytes | None, start: MessageKey | None = None) -> Window:
    """The stored window, or a fresh one beginning at ``start``."""
    if data is None:
        window = Window()
        window.begin_at(start)
        return window
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError:
        old = _earlier.decode(data)
    packed = b"".join(REMEMBERED.pack(*e) for e in old.recent if len(e[1]) == 8)
    fields = {f: getattr(old, f) for f in _Earlier.__struct_fields__ if f != "recent"}
    return Window(**fields, recent=packed)


def remembered(window: Window) -> Iterator[tuple[int, bytes, int, int]]:
    """The receipts accepted behind ``start``: (ts, tail, token, accepted at ms), oldest first."""
    return REMEMBERED.iter_unpack(window.recent)


def successor(key: MessageKey) -> MessageKey:
    """The smallest key after ``key`` (a position, not necessarily a message)."""
    value = int.from_bytes(key.tail.ljust(8, b"\x00"), "big") + 1
    if value >> 64:
        return MessageKey(key.ts + 1, b"")
    return MessageKey(key.ts, value.to_bytes(8, "big"))


class Receipt(msgspec.Struct, frozen=True):
    """What a receipt names inside one group incarnation (core signs and encodes it).

    A struct, not a named tuple: created in C, a claim of 100 makes 100 (hashable: frozen).
    """

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


class Claimed(msgspec.Struct):
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
    since: MessageKey | Literal["start"] | None = "start",
) -> tuple[list[Claimed], list[MessageKey]]:
    """Lease up to ``limit`` available messages, oldest first.

    ``scanned``: the keys of the partition's unexpired messages from where the
    scan began, ascending, as many as :func:`scan_size` asks for; ``expired``:
    the keys of expired ones still stored in that range (counted once, then
    done). ``since`` is where the scan began: ``"start"`` (the window's
    start; the frontier is left alone), or what :func:`scan_from` said for
    this window and ``now`` (and the frontier is kept). Returns what was leased
    and the keys that reached ``max_deliveries`` (to dead-letter or drop: the
    caller decides which, and counts it with :func:`dead`).

    Each message is leased and counted at most once: a key scanned twice is one
    key, and a key behind where the scan began is left out — behind ``start``
    (done: its record is gone) it would move ``start`` back and be leased and
    counted again; behind the frontier its record says what it is.

    ``window.records`` are kept in key order (every function here leaves them
    so), which lets a claim from the frontier touch only what lies after it.
    """
    frontier = not isinstance(since, str)
    known = window.frontier
    if isinstance(since, str):  # "start"
        since = window.start
    scanned = sorted({k for k in scanned if since is None or k >= since})
    expired = sorted({k for k in expired if since is None or k >= since})
    _forget_vanished(window, sorted([*scanned, *expired]), since)
    records = window.records
    first = 0 if since is None else _before(records, since)
    # Records behind ``since`` are settled; those after the scan are not looked at.
    last = max([*scanned[-1:], *expired[-1:]], default=None)
    end = len(records) if last is None else _before(records, successor(last))
    by_key = {(r.ts, r.tail): r for r in records[first:end]}
    appended: list[Record] = []
    for key in expired:
        found = by_key.get(key)
        if found is None:
            found = by_key[key] = Record(key.ts, key.tail, EXPIRED, 0, 0, 0)
            appended.append(found)
        elif found.state in DONE:
            continue
        else:
            found.state = EXPIRED
        window.counters.expired += 1
    leased: list[Claimed] = []
    epoch = window.epoch
    doomed: list[MessageKey] = []
    if not (rules.ordered and any(_live(r, now) for r in records)):
        # Counted only when the cap can be reached: it is 10,000 by default.
        capped = len(records) + limit >= rules.max_in_flight
        in_flight = sum(r.state == LEASED and r.until > now for r in records) if capped else 0
        for key in scanned:
            record = by_key.get(key)
            if record is not None and (record.state in DONE or _live(record, now)):
                continue
            if (
                record is not None
                and rules.max_deliveries
                and record.deliveries >= rules.max_deliveries
            ):
                # Its last lease ended: out of the group, also when not claiming.
                record.state = DEAD
                doomed.append(key)
                continue
            if len(leased) >= limit or (capped and in_flight >= rules.max_in_flight):
                continue  # nothing more to lease; the rest of the scan is only tidied
            if record is None:
                record = by_key[key] = Record(key.ts, key.tail, LEASED, 0, 0, 0)
                appended.append(record)
            _lease(window, record, rules, now, consumer)
            in_flight += record.state == LEASED
            leased.append(
                Claimed(key, Receipt(partition, key, epoch, record.token), record.deliveries)
            )
    if appended:
        appended.sort()  # by key: records order by their fields, key first
        if records and appended[0] < records[-1]:
            records = sorted([*records, *appended])
        else:  # the usual case: new messages after every record
            records = [*records, *appended]
        window.records = records
    _advance(window, _walk(window, since, scanned, expired, by_key), now)
    if frontier:  # as far as every scanned message has a record
        unrecorded = next((k for k in scanned if k not in by_key), None)
        covered = max([*scanned[-1:], *expired[-1:]], default=None)
        reached = unrecorded or (since if covered is None else successor(covered))
        # A scan from a record that came due may end before the frontier: it stays.
        window.reach(reached if known is None or reached is None else max(reached, known))
    return leased, doomed


def tidy(
    window: Window,
    scanned: Sequence[MessageKey],
    rules: Rules,
    now: int,
    expired: Sequence[MessageKey] = (),
) -> list[MessageKey]:
    """Bring the window up to date without leasing (before a state read).

    ``scanned`` and ``expired`` as for :func:`claim` without a frontier (from
    ``start``). Counts expired messages, ends the leases that reached
    ``max_deliveries`` (returned, to dead-letter or drop) and moves ``start``:
    what a claim would do first.
    """
    _, doomed = claim(window, 0, scanned, rules._replace(ordered=False), now, 0, None, expired)
    return doomed


def scan_from(window: Window, now: int) -> MessageKey | None:
    """Where a claim with a frontier scans from: the frontier, ``start``, or a record's key.

    ``start`` (None: the oldest) when no frontier is known. The key of the
    first record before the frontier that is available again (*due*: its
    lease ended or its release delay passed) when there is one: its message
    may have been deleted or have expired since its lease, and only a scan
    tells; every record before it is leased or done, so nothing before it can
    be claimed. Computed for each round of :func:`claim_from` and passed to
    :func:`claim` as ``since``.
    """
    start, reached = window.start, window.frontier
    if reached is None or (start is not None and reached <= start):
        return start
    for record in window.records:  # LEASED or RELEASED and over, before the frontier
        if record.until <= now and record.state <= RELEASED:
            key = MessageKey(record.ts, record.tail)
            return key if key < reached else reached
    return reached


def scan_size(window: Window, limit: int, since: MessageKey | None = None) -> int:
    """How many messages (expired ones included) a claim should scan from ``since``.

    ``since`` is where the scan begins (None: ``start``): ``limit`` more than
    the records there can hold back, and one more to find what follows them.
    """
    if since is None or since == window.start:
        return limit + len(window.records) + 1
    return limit + len(window.records) - _before(window.records, since) + 1


def _due_size(window: Window, limit: int, since: MessageKey, now: int) -> int | None:
    """How many messages a scan from the due record at ``since`` must read for ``limit`` of them.

    As many as there are records from ``since`` to the ``limit``-th due one, and one:
    every stored message before the frontier has a record, so the scan reads
    those due messages and the records' between them, not every lease in
    flight after them. None when fewer than ``limit`` are due before the
    frontier (the scan reads on past it, :func:`scan_size`).
    """
    reached = window.frontier
    records = window.records
    due = 0
    for count, record in enumerate(records[_before(records, since) :], 1):
        if reached is not None and (record.ts, record.tail) >= reached:
            return None
        if record.until <= now and record.state <= RELEASED:
            due += 1
            if due >= limit:
                return count + 1  # and one more, to find what follows them
    return None


def claim_from(
    window: Window,
    partition: int,
    scan: Callable[[MessageKey | None, int, bool], tuple[list[MessageKey], list[MessageKey]]],
    rules: Rules,
    now: int,
    limit: int,
    consumer: str | None,
) -> tuple[list[Claimed], list[MessageKey]]:
    """:func:`claim` from the window's frontier (SQLite), scanning with ``scan``.

    ``scan(since, size, frontier)``: the partition's (unexpired, expired)
    keys at or after ``since``, ascending, ``size`` at most; ``frontier``
    says the scan begins at the frontier. Records that came due before the
    frontier are claimed first, in rounds: each scans from the first of them
    only as far as the next ``limit`` due ones (:func:`_due_size`), so when
    thousands of leases end at once (consumers that died) a claim reads a
    hundred of them, not every lease in flight. Rounds go on until ``limit``
    are leased, a round scans from the frontier or the start, or a round
    changes nothing; they lease what one scan from ``start`` would, in the
    same order. An ordered group, or one with ``max_deliveries``, scans once
    from the first due record as far as :func:`scan_size` says, as a claim
    must judge every due lease there.
    """
    leased: list[Claimed] = []
    doomed: list[MessageKey] = []
    while len(leased) < limit:
        left = limit - len(leased)
        since = scan_from(window, now)
        reached = window.frontier
        due = since is not None and reached is not None and since < reached
        # One scan as far as it goes when the group is ordered (a claim judges the leases
        # once) or has max_deliveries (a claim ends every due lease that reached it).
        rounds = due and not rules.ordered and not rules.max_deliveries
        size = None
        if rounds:
            assert since is not None
            size = _due_size(window, left, since, now)
        if size is None:
            size = scan_size(window, left, since)
        alive, gone = scan(since, size, since is not None and since == reached)
        expired = window.counters.expired
        got, dead = claim(window, partition, alive, rules, now, left, consumer, gone, since)
        leased += got
        doomed += dead
        if not rounds or not (got or window.counters.expired > expired):
            break  # nothing changed: the cap on leases in flight was reached
    return leased, doomed


def lower(window: Window, key: MessageKey) -> None:
    """A message was stored at ``key``, maybe behind the frontier: scan from it again."""
    reached = window.frontier
    if reached is not None and key < reached:
        window.reach(key)


def _before(records: Sequence[Record], key: tuple[int, bytes]) -> int:
    """How many of ``records`` (in key order) lie before ``key``.

    Records order by their fields (``order=True``), key first: a probe with the
    key and a state below every real one sorts before the key's own record, and
    the search compares in C rather than calling a key function (half the time).
    """
    return bisect.bisect_left(records, Record(key[0], key[1], -1, 0, 0, 0))


def _walk(
    window: Window,
    since: MessageKey | None,
    scanned: Sequence[MessageKey],
    expired: Sequence[MessageKey],
    by_key: dict[tuple[int, bytes], Record],
) -> Iterator[tuple[tuple[int, bytes], Record | None]]:
    """The stored keys from ``start`` as far as the scan reached, in order, with their records.

    Before ``since`` (the frontier) every stored message has a record; from
    ``since`` on the scan shows them, and ``by_key`` holds their records.
    """
    if since is not None:
        for record in window.records:
            key = (record.ts, record.tail)
            if key >= since:
                break
            yield key, record
    for key in heapq.merge(scanned, expired):
        yield key, by_key.get(key)


def _forget_vanished(
    window: Window, scanned: Sequence[MessageKey], since: MessageKey | None = None
) -> None:
    """Drop leases of messages no longer stored (expired or deleted) within the scanned range.

    The range runs from ``since`` (None: from ``start``) to the last key scanned.
    Done records stay even when a scan does not show their message: a scan that
    misses a row (a replica behind, on Cassandra) must not make a done message
    deliverable again. They leave when ``start`` passes them (``_advance``).
    """
    records = window.records
    first = 0 if since is None else _before(records, since)
    end = len(records) if not scanned else _before(records, successor(scanned[-1]))
    present = {(k.ts, k.tail) for k in scanned}
    kept = records[:first]
    for record in records[first:end]:
        if record.state in (LEASED, RELEASED) and (record.ts, record.tail) not in present:
            window.counters.expired += 1
            continue
        kept.append(record)
    kept += records[end:]
    window.records = kept


def _advance(
    window: Window, walk: Iterable[tuple[tuple[int, bytes], Record | None]], now: int
) -> None:
    """Move ``start`` past the done messages at its head; remember their accepted receipts.

    ``walk``: the stored keys from ``start`` in order, with their records.
    """
    done: list[Record] = []
    following: tuple[int, bytes] | None = None
    for key, record in walk:
        if record is None or record.state not in DONE:
            following = key
            break
        done.append(record)
    if done:  # nothing done at the head: ``start`` stays where it is (null stays null)
        start = MessageKey(*following) if following else successor(done[-1].key)
        window.begin_at(start)
        cut = _before(window.records, start)
        behind, window.records = window.records[:cut], window.records[cut:]
        # Message tails are 8 bytes; anything else is not remembered (a retry of it is lost).
        window.recent += b"".join(
            REMEMBERED.pack(r.ts, r.tail, r.token, now)
            for r in behind
            if r.state == ACKED and len(r.tail) == 8
        )
    _forget_recent(window, now)


def _forget_recent(window: Window, now: int) -> None:
    """Keep the accepted receipts of the last ``RECENT_MS``, at most ``RECENT_MAX`` of them."""
    recent, size = window.recent, REMEMBERED.size
    count = len(recent) // size
    old = 0  # they were appended in time order: the old ones lead
    while old < count and REMEMBERED.unpack_from(recent, old * size)[3] <= now - RECENT_MS:
        old += 1
    old = max(old, count - RECENT_MAX)
    if old > 0:
        window.recent = recent[old * size :]


def dead(window: Window, count: int, lettered: bool) -> None:
    """Count ``count`` messages that reached max_deliveries: dead-lettered or dropped."""
    if lettered:
        window.counters.dead_lettered += count
    else:
        window.counters.dropped += count


def accepts(
    window: Window,
    receipt: Receipt,
    rules: Rules,
    now: int,
    action: str,
) -> bool:
    """Whether ``receipt`` may acknowledge, release or extend (SPEC §6, by guarantee)."""
    return _accepted(window, receipt, window.find(receipt.key), rules, now, action)


def _accepted(
    window: Window,
    receipt: Receipt,
    record: Record | None,
    rules: Rules,
    now: int,
    action: str,
) -> bool:
    """:func:`accepts`, given the record of the receipt's key (None: none)."""
    if receipt.epoch != window.epoch:
        return False  # a seek leased everything again
    if rules.guarantee == "at_most_once":
        return True
    if record is None:
        behind = window.start is not None and receipt.key < window.start
        return (
            action == "ack"
            and behind
            and any(
                (ts, tail, token) == (*receipt.key, receipt.token)
                for ts, tail, token, _ in remembered(window)
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
    for receipt in receipts:
        record = window.find(receipt.key)
        if not _accepted(window, receipt, record, rules, now, action):
            lost.append(receipt)
            continue
        accepted.append(receipt)
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
    window.reach(None)
    window.epoch += 1
    window.records = []
    window.recent = b""


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
