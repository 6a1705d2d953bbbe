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
next completes it: unless the record says its message is stored (``stored``,
set by a plain write once it was), it reads the message by id and, if it is
absent, writes it with the recorded id and partition and its own body and TTL
(counted from the record's time), at the record's time as write timestamp.
That old timestamp makes a completion harmless when it races the original
write (the original's newer cells win) or when the message was deleted or
expired meanwhile (the newer tombstone or expired cell wins, as long as the
table keeps it: ``gc_grace_seconds``, 10 days by default): the message is
stored once and never comes back. A completion whose TTL has run out writes
nothing.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

from cassandra import ConsistencyLevel

from queuey.storage.base import StoreUnavailable
from queuey.storage.cassandra import trace
from queuey.storage.cassandra.messages import Messages, Row, all_of
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import message_key, timeuuid
from queuey.storage.keys import MessageKey, now_ticks

#: Cassandra's longest TTL (20 years): the longest window a record can take.
MAX_WINDOW = 630_720_000
#: Seconds the stored flag expires before its record. Two coordinators' clocks
#: may differ a little, and a flag outliving its record would leave a row
#: without an answer that no new record can replace.
FLAG_MARGIN = 10


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
        results = await all_of(
            [self._db.execute(s, level, ConsistencyLevel.SERIAL) for s in statements.values()]
        )
        return {ikey: _earlier(r[0]) for ikey, r in zip(statements, results, strict=True)}

    async def complete(
        self, qid: uuid.UUID, ikey: str, record: Record, row: Row, read: int, write: int
    ) -> None:
        """Make sure the message of an earlier record is stored, with ``row``'s body if need be.

        Its TTL is ``row``'s, counted from the record's time.
        """
        if record.stored:
            return
        found = await self._messages.get(qid, [(record.partition, record.key)], read)
        if not found:
            ttl = row.ttl - _seconds_since(record.created)
            if ttl < 1:
                return  # it would have expired by now
            late = Row(
                record.partition, record.key, row.body, row.content_type, ttl, record.created
            )
            await self._messages.write(qid, [late], write)
            if trace.enabled():
                trace.trace(
                    "complete", ikey=ikey, id=str(timeuuid(record.key)), age=_age(record.key)
                )
        await self.mark_stored(qid, ikey, record.created, write)

    async def mark_stored(self, qid: uuid.UUID, ikey: str, created: int, level: int) -> None:
        """Note that the key's message is stored. Best effort: the flag only spares a read."""
        ttl = self.window - FLAG_MARGIN - _seconds_since(created)
        if ttl >= 1:
            with contextlib.suppress(StoreUnavailable):
                await self._db.run("key_stored", (ttl, qid, ikey), level)


def _age(key: MessageKey) -> float:
    """Seconds since the id's timestamp (for traces)."""
    return round((now_ticks() - key.ts) / 10_000_000, 3)


def _earlier(row: Any) -> Record | None:
    """The record a conditional insert found (None: the insert applied)."""
    if row[0]:  # [applied]
        return None
    if row.id is None:
        raise StoreUnavailable("an idempotency key's record holds no answer; try again")
    return Record(message_key(row.id), row.partition, row.created, bool(row.stored))
