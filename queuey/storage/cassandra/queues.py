"""Queue metadata on Cassandra: bucketed rows, lightweight transactions, paging by name.

Rows are partitioned by (application, first character of the name), see
``schema.py``. Every change of a queue row is a lightweight transaction:
creation is ``IF NOT EXISTS``, deletion ``IF qid = ?`` and updates ``IF qid =
? AND partitions = ?``, so two web nodes never both create a queue, a stale
copy never deletes or updates a queue created again under the same name, and
concurrent updates never shrink the partition count. ``namespace`` keeps one
deployment's applications apart from another's sharing the keyspace.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from queuey.storage.base import (
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    StoreUnavailable,
)
from queuey.storage.cassandra.session import Connection

#: Compare-and-set rounds an update tries before it gives up.
UPDATE_ATTEMPTS = 8


def bucket(name: str) -> str:
    """The partition of the ``queues`` table a queue name falls in."""
    return name[:1]


def _queue(app: str, row: Any) -> Queue:
    return Queue(
        app=app,
        name=row.name,
        settings=QueueSettings(
            partitions=row.partitions,
            type=row.type,
            consistency=row.consistency,
            principles=tuple(row.principles or ()),
        ),
        created=row.created,
        handle=str(row.qid),
    )


class Queues:
    """The queues of one namespace."""

    def __init__(self, db: Connection, namespace: str) -> None:
        self._db = db
        self._namespace = namespace

    def _app(self, app: str) -> str:
        """The application as stored: prefixed by the namespace, if any."""
        return f"{self._namespace}/{app}" if self._namespace else app

    async def create(self, app: str, name: str, settings: QueueSettings) -> tuple[Queue, bool]:
        db = self._db
        stored = self._app(app)
        await db.run("add_bucket", (stored, bucket(name)), db.levels.meta)
        args = (
            stored,
            bucket(name),
            name,
            uuid.uuid4(),
            settings.partitions,
            settings.type,
            settings.consistency,
            list(settings.principles),
            round(time.time(), 3),
        )
        rows = await db.run("create_queue", args, db.levels.meta)
        applied = bool(rows and rows[0][0])
        queue = await self.get(app, name)
        if queue is None:  # deleted between the two statements
            raise StoreUnavailable("the queue changed while it was created; try again")
        return queue, applied

    async def get(self, app: str, name: str) -> Queue | None:
        rows = await self._db.meta("get_queue", (self._app(app), bucket(name), name))
        return _queue(app, rows[0]) if rows else None

    async def update(self, queue: Queue, settings: QueueSettings) -> Queue:
        """Compare-and-set on (incarnation, partition count), so the count never shrinks."""
        for _ in range(UPDATE_ATTEMPTS):
            current = await self.get(queue.app, queue.name)
            if current is None or current.handle != queue.handle:
                raise QueueNotFound()
            args = (
                max(settings.partitions, current.partitions),
                settings.type,
                settings.consistency,
                list(settings.principles),
                self._app(queue.app),
                bucket(queue.name),
                queue.name,
                uuid.UUID(queue.handle),
                current.partitions,
            )
            rows = await self._db.run("update_queue", args, self._db.levels.meta)
            if rows and rows[0][0]:
                updated = await self.get(queue.app, queue.name)
                if updated is None or updated.handle != queue.handle:
                    raise QueueNotFound()
                return updated
            # Deleted, or another update changed the partition count: look again.
        raise StoreUnavailable("the queue kept changing while it was updated; try again")

    async def delete(self, queue: Queue) -> None:
        """Remove this incarnation's row (``IF qid``); its messages expire by TTL."""
        await self._db.run(
            "delete_queue",
            (self._app(queue.app), bucket(queue.name), queue.name, uuid.UUID(queue.handle)),
            self._db.levels.meta,
        )

    async def page(self, app: str, start: str | None, limit: int) -> list[Queue]:
        """Walk the buckets from ``start``'s on, in order, until ``limit`` queues are found."""
        start = start or ""
        stored = self._app(app)
        buckets = [r.bucket for r in await self._db.meta("buckets", (stored, bucket(start)))]
        found: list[Queue] = []
        for name in buckets:
            lower = start if name == bucket(start) else ""
            rows = await self._db.meta("list_queues", (stored, name, lower, limit - len(found)))
            found.extend(_queue(app, row) for row in rows)
            if len(found) >= limit:
                break
        return found

    async def check(self, queue: Queue) -> None:
        """Refuse a write to a deleted queue (QueueNotFound) or on stale settings (QueueChanged)."""
        current = await self.get(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            raise QueueNotFound()
        if (current.partitions, current.settings.consistency) != (
            queue.partitions,
            queue.settings.consistency,
        ):
            raise QueueChanged()
