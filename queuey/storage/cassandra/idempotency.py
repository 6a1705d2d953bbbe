"""Idempotency keys on Cassandra: a compare-and-set record per key, written before the message.

``post_messages`` (``store.py``) records each key of a call with ``INSERT ...
IF NOT EXISTS USING TTL <window>`` before it writes any message: the record
holds the id and partition the message gets and the record's time. Of posts
racing with one key, on any web nodes, exactly one record is applied; the
others get that record back and answer with it. The Paxos phase runs at
SERIAL (not LOCAL_SERIAL: a key is one across data centres, as the contract
promises for racing posts, at the cost of a cross-DC round trip for keyed
posts in multi-DC deployments); the commit at the queue's write level.

The record comes first, so a web node that dies (or a message write that
fails) in between leaves a record without its message. Whoever posts the key
next completes it: unless the record says its message is stored (``stored``),
it reads the message by id and, if it is absent, writes it with the recorded
partition and its own body and TTL (counted from the record's time).

**Ids are written only while fresh** (:class:`Freshness`). A range read
shows a message once its id is older than the queue's settle delay (SPEC §4),
and a reader paging with ``since`` or a group whose cursor moved on never
looks behind that again. A message written later under an older id would be
skipped by every one of them (an at_most_once group never leases it, an
at_least_once group never delivers it). So a message is written under its
id only while the id is at most half the settle delay old (the other half is
for the write to land); a completion that comes later gives the key a new id
first (``IF id = <old> AND stored = null``: the old id was never answered),
writes a tombstone over the old id (so a write of it still in flight, or
stored on too few replicas, never shows) and stores the message under the
new one. Just past half the delay (a margin of at most :data:`MARGIN`) a
post of the key is answered StoreUnavailable: a write begun in time may
still be landing. A post whose own ids grew too old while it recorded them
writes nothing (StoreUnavailable); its retry completes them.

Write timestamps: the first write of an id (the post's own, or the one that
gives a key a new id) is at the id's time (µs) plus one, a completion at the
id's time. A completion racing the original write loses
to it (its cells are older); a message deleted or expired meanwhile stays so
(the newer tombstone or expired cell wins, as long as the table keeps it:
``gc_grace_seconds``, 10 days by default); and the tombstone of a replaced id
is newer than any write of it. A completion whose TTL has run out writes
nothing.

``stored`` is set once the message is known to be stored, before the key is
answered (when the queue has a settle delay: an unset flag then means the id
was never answered, so it may be replaced). A write that returned within
``marked_by`` sets it plainly: whoever replaces an id reads the message later
than that and finds it. A write that returned later sets it only if the key
still names its id (compare-and-set); if the id was replaced meanwhile, the
key is answered with the new one.

Left open: a replacement whose tombstone write fails after its
compare-and-set applied leaves the old id without one; a write of it stored
on too few replicas could still show later.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from cassandra import ConsistencyLevel

from queuey.storage.base import StoreUnavailable
from queuey.storage.cassandra import trace
from queuey.storage.cassandra.messages import Messages, Row, all_of
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import message_key, timeuuid
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey, now_ticks

#: Cassandra's longest TTL (20 years): the longest window a record can take.
MAX_WINDOW = 630_720_000
#: Seconds the stored flag expires before its record. Two coordinators' clocks
#: may differ a little, and a flag outliving its record would leave a row
#: without an answer that no new record can replace.
FLAG_MARGIN = 10
#: The longest margin, in seconds, between the freshness limits (:class:`Freshness`).
MARGIN = 1.0
#: Rounds of a completion whose record keeps changing before StoreUnavailable.
ROUNDS = 4
SERIAL = ConsistencyLevel.SERIAL


class Freshness(NamedTuple):
    """How old (seconds since its timestamp) an id may be at each step of storing its message.

    From a queue's settle delay; without one (0) nothing is hidden, no limit.
    """

    write_by: float
    """A message is written under its id only up to this age: half the settle delay."""
    marked_by: float
    """A write that returned by this age marks its key stored plainly, later only if the
    key still names its id."""
    rekey_after: float
    """A key whose message was never stored gets a new id after this age; in between,
    StoreUnavailable."""

    @classmethod
    def of(cls, settle: float) -> Freshness:
        if settle <= 0:
            return cls(math.inf, math.inf, math.inf)
        write_by = settle / 2
        margin = min(write_by, MARGIN)
        return cls(write_by, write_by + margin / 2, write_by + margin)

    @property
    def limited(self) -> bool:
        return math.isfinite(self.rekey_after)


class Record(NamedTuple):
    """A key's record: the answer, and what completing its message needs."""

    key: MessageKey
    partition: int
    created: int
    """When the record was made, µs since the Unix epoch: a completion's write timestamp."""
    stored: bool


def now_micros() -> int:
    return time.time_ns() // 1000


def _seconds_since(micros: int) -> int:
    """Whole seconds since ``micros``, rounded up."""
    return -(-(now_micros() - micros) // 1_000_000)


def age(key: MessageKey) -> float:
    """Seconds since the timestamp of ``key``."""
    return (now_ticks() - key.ts) / 10_000_000


def stamp(key: MessageKey) -> int:
    """The time of ``key`` in µs since the Unix epoch: the write timestamp of its completions."""
    return (key.ts - UNIX_EPOCH_TICKS) // 10


class Keys:
    """The idempotency keys of every queue, on one connection, remembered ``window`` seconds."""

    def __init__(self, db: Connection, messages: Messages, window: int) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"idempotency_window must be 1..{MAX_WINDOW} seconds")
        self._db = db
        self._messages = messages
        self.window = window

    async def record(
        self, qid: uuid.UUID, rows: Mapping[str, Row], created: int, level: int
    ) -> dict[str, Record | None]:
        """Record each key's row (compare-and-set); per key, None if recorded now, else the record.

        Every statement is encoded before any is sent. Raises
        StoreUnavailable once every one has finished if any failed: some
        keys may then be recorded.
        """
        statements = {
            ikey: self._db.bind(
                "record_key",
                (qid, ikey, timeuuid(row.key), row.partition, created, self.window),
            )
            for ikey, row in rows.items()
        }
        results = await all_of([self._db.execute(s, level, SERIAL) for s in statements.values()])
        return {ikey: _earlier(r[0]) for ikey, r in zip(statements, results, strict=True)}

    async def complete(
        self,
        qid: uuid.UUID,
        ikey: str,
        record: Record,
        row: Row,
        levels: tuple[int, int],
        fresh: Freshness,
        new_key: Callable[[], MessageKey],
    ) -> Record:
        """Make sure the message of an earlier record is stored; the record that answers the key.

        Written with ``row``'s body if need be, its TTL ``row``'s counted from
        the record's time; under a new id if its own is too old (the module
        docstring). ``levels``: the queue's read and write levels; ``new_key``:
        a fresh id. StoreUnavailable while the id is neither fresh nor old
        enough to replace.
        """
        read, write = levels
        for _ in range(ROUNDS):
            if record.stored:
                return record
            found = await self._messages.get(qid, [(record.partition, record.key)], read)
            if not found:
                ttl = row.ttl - _seconds_since(record.created)
                if ttl < 1:
                    return record  # it would have expired by now
                old = age(record.key)
                at = stamp(record.key)  # a completion: older than the first write of its id
                if old > fresh.rekey_after:
                    moved = await self._rekey(qid, ikey, record, new_key(), write)
                    if moved is None:  # stored or replaced meanwhile
                        record = await self.current(qid, ikey)
                        continue
                    await self._messages.delete(qid, [(record.partition, record.key)], write)
                    if trace.enabled():
                        trace.trace("rekey", ikey=ikey, old=str(timeuuid(record.key)), age=old)
                    record = moved
                    at = stamp(record.key) + 1  # the first write of the new id
                elif old > fresh.write_by:
                    raise StoreUnavailable(
                        "the message of an idempotency key may still be landing; try again"
                    )
                late = Row(record.partition, record.key, row.body, row.content_type, ttl, at)
                await self._messages.write(qid, [late], write)
                if trace.enabled():
                    trace.trace("complete", ikey=ikey, id=str(timeuuid(record.key)), age=old)
            if await self.mark(qid, ikey, record, write, fresh):
                return record._replace(stored=True)
            record = await self.current(qid, ikey)
        raise StoreUnavailable("an idempotency key's record kept changing; try again")

    async def mark(
        self, qid: uuid.UUID, ikey: str, record: Record, level: int, fresh: Freshness
    ) -> bool:
        """Note that the record's message is stored: whether the key still names it.

        Plainly while the id is at most ``marked_by`` old (required when ids are
        replaced at all, else best effort), by compare-and-set after.
        """
        ttl = self.window - FLAG_MARGIN - _seconds_since(record.created)
        if ttl < 1:
            return True
        if age(record.key) <= fresh.marked_by:
            await self.mark_stored(qid, ikey, record.created, level, fresh.limited)
            return True
        args = (ttl, qid, ikey, timeuuid(record.key))
        rows = await self._db.run("key_stored_if", args, level, SERIAL)
        return bool(rows[0][0])

    async def mark_stored(
        self, qid: uuid.UUID, ikey: str, created: int, level: int, required: bool = False
    ) -> None:
        """Set the key's stored flag by a plain write (failures ignored unless ``required``)."""
        ttl = self.window - FLAG_MARGIN - _seconds_since(created)
        if ttl >= 1:
            try:
                await self._db.run("key_stored", (ttl, qid, ikey), level)
            except StoreUnavailable:
                if required:
                    raise

    async def current(self, qid: uuid.UUID, ikey: str) -> Record:
        """The key's record as it is now (SERIAL)."""
        rows = await self._db.run("get_key", (qid, ikey), SERIAL)
        if not rows or rows[0].id is None:
            raise StoreUnavailable("an idempotency key's record is gone; try again")
        row = rows[0]
        return Record(message_key(row.id), row.partition, row.created, bool(row.stored))

    async def _rekey(
        self, qid: uuid.UUID, ikey: str, record: Record, new: MessageKey, level: int
    ) -> Record | None:
        """Give the key ``new`` for an id never stored (compare-and-set); None if it lost."""
        ttl = max(1, self.window - _seconds_since(record.created))
        args = (ttl, timeuuid(new), qid, ikey, timeuuid(record.key))
        rows = await self._db.run("rekey", args, level, SERIAL)
        return record._replace(key=new, stored=False) if rows[0][0] else None


def _earlier(row: Any) -> Record | None:
    """The record a conditional insert found (None: the insert applied)."""
    if row[0]:  # [applied]
        return None
    if row.id is None:
        raise StoreUnavailable("an idempotency key's record holds no answer; try again")
    return Record(message_key(row.id), row.partition, row.created, bool(row.stored))
