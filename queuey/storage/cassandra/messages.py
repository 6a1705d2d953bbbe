"""Messages on Cassandra: batched writes, range reads over hour buckets, lookups, deletes.

A message lives in partition ``(qid, partition, hour)`` (``schema.py``); the
``message_hours`` index lists the hours of a queue partition that may hold
messages, and is written before the messages it points to.

How much of a write is all or nothing (:meth:`Messages.write`): every value is
encoded before anything is sent, so a value Cassandra cannot hold fails the
call with nothing stored. Then the rows go as

- one UNLOGGED batch when they share one Cassandra partition and take at most
  ``batch_bytes``: one mutation, atomic and isolated on every replica;
- one LOGGED batch when they span several partitions and take at most
  ``logged_batch_bytes`` (below the cluster's ``batch_size_fail_threshold``,
  50 KiB by default): the batchlog applies all of it or none;
- otherwise one UNLOGGED batch per partition and ``batch_bytes``, run
  concurrently: each batch is all or nothing, the write as a whole is not. A
  failure then may leave some batches stored; the call raises
  :class:`StoreUnavailable` once every batch has finished.

:meth:`Messages.bind` and :meth:`Messages.send` are the two halves of
:meth:`Messages.write`, for a caller that must know every value encodes
before it writes anything else (idempotency keys, ``idempotency.py``).
A row may carry its write timestamp (microseconds): a message completed late
with an old timestamp loses to every later write of its id, a delete included.

Range reads take a partition's hours from the index as this process read it
less than :data:`HOURS_SECONDS` ago, when they hide messages younger than the
settle delay (``settle``): an index read at time T lists the hour of every
message whose id is older than T less the settle delay (the delay's premise:
a message, and before it its index row, lands within it), and the hours from
that one on are read whatever the index said. So a post is never missed. What
the remembered index may miss for that long is another web node's overwrite
by id (``put_messages``) of an id older than that, in an hour that had no
message in the partition; this process's own writes forget the index they
are missing from.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from cassandra.query import BoundStatement

from queuey.storage.base import Message
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import MAX_TAIL, MIN_TAIL, hour, key_of_bytes, timeuuid
from queuey.storage.keys import MessageKey, now_ticks

T = TypeVar("T")
#: Bytes a row costs a batch beyond its encoded values (measured on Cassandra 5: ~50-100).
ROW_OVERHEAD = 128
#: Statements one call runs at once when it runs one per partition or per message.
FAN_OUT = 32
#: Seconds a partition's hour index, as read, serves range reads (see the module's docstring).
HOURS_SECONDS = 1.0
#: Queue partitions whose hour index is remembered, at most (all forgotten past it).
HOURS_KEPT = 10_000


class Row(NamedTuple):
    """A message to write at a key the caller chose (at ``timestamp`` µs, if given)."""

    partition: int
    key: MessageKey
    body: str
    content_type: str
    ttl: int
    timestamp: int | None = None


class Bound(NamedTuple):
    """A row's insert, encoded, with its Cassandra partition and what it costs a batch."""

    group: tuple[int, int]  # (queue partition, hour)
    statement: BoundStatement
    size: int


class Hours(NamedTuple):
    """A partition's hour index from some hour on, as read."""

    deadline: float  # time.monotonic() after which it is read again
    read_at: int  # when the read began, in key ticks
    hours: list[int]  # ascending
    known: frozenset[int]


async def all_of(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await every call; then raise the first failure, if any (no call left running)."""
    if len(calls) <= 1:  # no task to run it beside others
        return [await call for call in calls]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def bounded(calls: Sequence[Awaitable[T]], limit: int = FAN_OUT) -> list[T]:
    """Await every call, at most ``limit`` at a time; then raise the first failure, if any."""
    gate = asyncio.Semaphore(limit)

    async def run(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await all_of([run(call) for call in calls])


class Messages:
    """The messages of every queue, on one connection."""

    def __init__(self, db: Connection, *, batch_bytes: int, logged_batch_bytes: int) -> None:
        self._db = db
        self._batch_bytes = batch_bytes
        self._logged_batch_bytes = logged_batch_bytes
        self._known_hours: set[tuple[uuid.UUID, int, int]] = set()
        #: (qid, partition) -> first hour -> the index from it on, as read (read_range).
        self._hours: dict[tuple[uuid.UUID, int], dict[int, Hours]] = {}
        #: Writes that made this process forget an index: a read that overlapped one
        #: is not remembered.
        self._forgotten = 0

    async def _note_hours(self, qid: uuid.UUID, pairs: set[tuple[int, int]], level: int) -> None:
        """Record the hours written to, once per process and hour."""
        new = [(p, h) for p, h in pairs if (qid, p, h) not in self._known_hours]
        if not new:
            return
        await all_of([self._db.run("add_hour", (qid, p, h), level) for p, h in new])
        if len(self._known_hours) > 100_000:
            self._known_hours.clear()
        self._known_hours.update((qid, p, h) for p, h in new)

    async def write(self, qid: uuid.UUID, rows: Sequence[Row], level: int) -> None:
        """Insert (or overwrite) ``rows``, all or nothing as far as the module's rules allow."""
        await self.send(qid, self.bind(qid, rows), level)

    def bind(self, qid: uuid.UUID, rows: Sequence[Row]) -> list[Bound]:
        """Encode every row's insert; StoreUnavailable (nothing sent) if a value cannot be."""
        bound = []
        for row in rows:
            bucket = hour(row.key.ts)
            args = (qid, row.partition, bucket, timeuuid(row.key), row.body, row.content_type)
            if row.timestamp is None:
                statement = self._db.bind("insert", (*args, row.ttl))
            else:
                statement = self._db.bind("insert_at", (*args, row.ttl, row.timestamp))
            size = sum(len(v) for v in statement.values if v) + ROW_OVERHEAD
            bound.append(Bound((row.partition, bucket), statement, size))
        return bound

    async def send(self, qid: uuid.UUID, bound: Sequence[Bound], level: int) -> None:
        """Write rows :meth:`bind` encoded, in batches as the module's rules say."""
        if not bound:
            return
        db = self._db
        groups: dict[tuple[int, int], list[tuple[BoundStatement, int]]] = {}
        every: list[BoundStatement] = []
        total = 0
        for group, statement, size in bound:
            groups.setdefault(group, []).append((statement, size))
            every.append(statement)
            total += size
        self._forget_hours(qid, groups)
        await self._note_hours(qid, set(groups), level)
        if len(groups) == 1 and total <= self._batch_bytes:
            await db.batch(every, level, logged=False)
        elif len(groups) > 1 and total <= self._logged_batch_bytes:
            await db.batch(every, level, logged=True)
        else:
            chunks = [chunk for group in groups.values() for chunk in self._chunks(group)]
            await all_of([db.batch(chunk, level, logged=False) for chunk in chunks])

    def _forget_hours(self, qid: uuid.UUID, groups: Iterable[tuple[int, int]]) -> None:
        """Forget the remembered indexes that miss an hour about to be written."""
        for partition, bucket in groups:
            kept = self._hours.get((qid, partition))
            if kept and any(
                first <= bucket and bucket not in index.known for first, index in kept.items()
            ):
                del self._hours[(qid, partition)]
                self._forgotten += 1

    async def _hours_of(
        self,
        qid: uuid.UUID,
        partition: int,
        first: int,
        last: int,
        level: int,
        settle: int | None,
    ) -> list[int]:
        """The hours ``first``..``last`` of a partition that may hold messages, ascending.

        ``settle``: the read hides ids younger than this (ticks), so a remembered
        index will do (the module's docstring); None or 0: the index is read.
        """
        if settle:
            index = self._hours.get((qid, partition), {}).get(first)
            if index is not None and index.deadline > time.monotonic():
                hours = [h for h in index.hours if h <= last]
                # Hours that may have been indexed since: of ids then younger than the delay.
                since = max(first, hour(index.read_at - settle))
                later = [h for h in range(since, last + 1) if h not in index.known]
                return sorted(hours + later) if later else hours
        forgotten = self._forgotten
        read_at = now_ticks()
        rows = await self._db.run("hours_from", (qid, partition, first), level)
        hours = [r.hour for r in rows]
        if settle and forgotten == self._forgotten:
            if len(self._hours) >= HOURS_KEPT:
                self._hours.clear()
            deadline = time.monotonic() + HOURS_SECONDS
            self._hours.setdefault((qid, partition), {})[first] = Hours(
                deadline, read_at, hours, frozenset(hours)
            )
        return [h for h in hours if h <= last]

    def _chunks(self, group: list[tuple[BoundStatement, int]]) -> list[list[BoundStatement]]:
        """One partition's statements cut into batches of at most ``batch_bytes`` (or one row)."""
        chunks: list[list[BoundStatement]] = [[]]
        size = 0
        for statement, cost in group:
            if chunks[-1] and size + cost > self._batch_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(statement)
            size += cost
        return chunks

    async def read_range(
        self,
        qid: uuid.UUID,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
        newest: MessageKey,
        level: int,
        settle: int | None = None,
    ) -> list[Message]:
        """Up to ``limit`` messages of one partition from ``since``, none newer than ``newest``.

        ``settle``: ``newest`` is now less this many ticks, the settle delay
        (before ``since`` bounds it), and the hour index may be the one this
        process read less than :data:`HOURS_SECONDS` ago (the module's docstring).
        """
        oldest = MessageKey(0, MIN_TAIL)
        if since is not None and descending:
            # At or before ``since``, newest first; a pure time bound takes its whole tick.
            newest = min(newest, since if since.tail else MessageKey(since.ts, MAX_TAIL))
        elif since is not None:
            oldest = since if since.tail else MessageKey(since.ts, MIN_TAIL)
        lower, upper = timeuuid(oldest), timeuuid(newest)
        first_hour = max(hour(oldest.ts), 0)
        hours = await self._hours_of(qid, partition, first_hour, hour(newest.ts), level, settle)
        if descending:
            hours.reverse()
        statement = "range_desc" if descending else "range_asc"
        found: list[Message] = []
        for bucket in hours:
            rows = await self._db.run(
                statement, (qid, partition, bucket, lower, upper, limit - len(found)), level
            )
            found.extend(
                Message(key_of_bytes(r.id), partition, r.body, r.content_type) for r in rows
            )
            if len(found) >= limit:
                break
        return found

    async def get(
        self, qid: uuid.UUID, keys: Sequence[tuple[int, MessageKey]], level: int
    ) -> list[Message]:
        results = await all_of(
            [self._db.run("get", (qid, p, hour(k.ts), timeuuid(k)), level) for p, k in keys]
        )
        return [
            Message(key, partition, rows[0].body, rows[0].content_type)
            for (partition, key), rows in zip(keys, results, strict=True)
            if rows
        ]

    async def delete(
        self, qid: uuid.UUID, keys: Sequence[tuple[int, MessageKey]], level: int
    ) -> None:
        await all_of(
            [self._db.run("delete", (qid, p, hour(k.ts), timeuuid(k)), level) for p, k in keys]
        )

    async def count(self, qid: uuid.UUID, partitions: int, level: int) -> int:
        """Unexpired messages in partitions 1..``partitions``, one count per hour bucket."""
        total = 0
        for partition in range(1, partitions + 1):
            hours = await self._db.run("hours_from", (qid, partition, 0), level)
            counts = await all_of(
                [self._db.run("count", (qid, partition, h.hour), level) for h in hours]
            )
            total += sum(rows[0][0] for rows in counts)
        return total
