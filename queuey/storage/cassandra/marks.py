"""Change marks of queues on Cassandra: how readers waiting on one web node hear of the others.

A queue's mark (``Storage.marks``) is read, never written by posts: the
newest message id of each partition in the current hour bucket (posts land
there: their ids are made now, on some web node), and the ``queue_marks``
row that overwrites by id leave (an overwrite may write any id, in any hour,
so it says so itself: a fresh TimeUUID, and the newest key it wrote). The
queue's own row tells whether the incarnation is gone.

Ids newer than a little past now are left out, so that a message overwritten
with an id far in the future cannot hide the posts that follow it; ids of a
web node whose clock runs ahead by more than that show once the clock
catches up. Near the turn of an hour the neighbouring hour is read too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from queuey.storage.base import Queue, QueueMark
from queuey.storage.cassandra.messages import FAN_OUT, all_of
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import MAX_TAIL, hour, message_key, timeuuid
from queuey.storage.keys import MessageKey, now_ticks

#: Ids up to this far ahead of this node's clock count (100 ns ticks: 2 s).
AHEAD = 2 * 10_000_000
#: The previous hour is read too while this node's clock is this close past its end (5 s).
BEHIND = 5 * 10_000_000
#: A mark row outlives the overwrite it announces by a day (then the mark changes once more).
MARK_TTL = 86400


class Marks:
    """Reads queues' change marks and records overwrites by id (a part of the store)."""

    def __init__(self, db: Connection, queues: Queues) -> None:
        self._db = db
        self._queues = queues

    async def overwritten(
        self, queue: Queue, changed: MessageKey, keys: Sequence[MessageKey], level: int
    ) -> None:
        """Announce an overwrite by id: ``changed`` a fresh key, ``keys`` the ids written."""
        if keys:
            args = (MARK_TTL, timeuuid(changed), timeuuid(max(keys)), uuid.UUID(queue.handle))
            await self._db.run("set_mark", args, level)

    async def marks(self, queues: Sequence[Queue], levels: dict[str, int]) -> list[QueueMark]:
        gate = asyncio.Semaphore(FAN_OUT)

        async def one(queue: Queue) -> QueueMark:
            # Each statement is made inside the gate: a poll cancelled at shutdown leaves
            # no coroutine that was never awaited.
            async with gate:
                return await self._mark(queue, levels[queue.settings.consistency])

        return await all_of([one(q) for q in queues])

    async def _mark(self, queue: Queue, level: int) -> QueueMark:
        current = await self._queues.get(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            return QueueMark(None, None, gone=True)
        qid = uuid.UUID(queue.handle)
        now = now_ticks()
        upper = timeuuid(MessageKey(now + AHEAD, MAX_TAIL))
        hours = sorted({hour(now - BEHIND), hour(now), hour(now + AHEAD)})

        gate = asyncio.Semaphore(FAN_OUT)

        async def newest(partition: int, bucket: int) -> list[Any]:
            async with gate:
                return await self._db.run("newest_in_hour", (qid, partition, bucket, upper), level)

        partitions = range(1, current.partitions + 1)
        found = await all_of([newest(p, h) for p in partitions for h in hours])
        marked = await self._db.run("get_mark", (qid,), level)
        ids = tuple(rows[0].id if rows else None for rows in found)
        keys = [message_key(i) for i in ids if i is not None]
        changed = None
        if marked:
            changed = marked[0].changed
            if marked[0].newest is not None:
                keys.append(message_key(marked[0].newest))
        return QueueMark((ids, changed), max(keys) if keys else None)
