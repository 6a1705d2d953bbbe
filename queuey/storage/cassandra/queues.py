"""Queue metadata on Cassandra: bucketed rows, lightweight transactions, paging by name.

Rows are partitioned by (application, first character of the name), see
``schema.py``; creation is ``IF NOT EXISTS`` and updates are ``IF qid = ?``,
so two web nodes never both create a queue, and an update never lands on a
queue created again under the same name. ``namespace`` keeps one
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
    StorageUnavailable,
)
from queuey.storage.cassandra.session import Connection


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
            raise StorageUnavailable("the queue changed while it was created; try again")
        return queue, applied

    async def get(self, app: str, name: str) -> Queue | None:
        rows = await self._db.meta("get_queue", (self._app(app), bucket(name), name))
        return _queue(app, rows[0]) if rows else None

    async def update(self, queue: Queue, settings: QueueSettings) -> Queue:
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
        )
        rows = await self._db.run("update_queue", args, self._db.levels.meta)
        if not (rows and rows[0][0]):
            raise QueueNotFound()
        updated = await self.get(queue.app, queue.name)
        if updated is None:
            raise QueueNotFound()
        return updated

    async def delete(self, queue: Queue) -> None:
        # The row goes now; the messages of this incarnation (qid) expire by TTL.
        await self._db.run(
            "delete_queue",
            (self._app(queue.app), bucket(queue.name), queue.name),
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
