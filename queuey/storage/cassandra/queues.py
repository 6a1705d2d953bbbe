"""Queue metadata on Cassandra: bucketed rows, lightweight transactions, paging by name.

Rows are partitioned by (application, first character of the name), see
``schema.py``. Every change of a queue row is a lightweight transaction:
creation is ``IF NOT EXISTS``, deletion ``IF qid = ?`` and updates ``IF qid =
? AND partitions = ?``, so two web nodes never both create a queue, a stale
copy never deletes or updates a queue created again under the same name, and
concurrent updates never shrink the partition count. ``namespace`` keeps one
deployment's applications apart from another's sharing the keyspace.

Checks before a write (:meth:`Queues.check`) read the queue's row, except
for posts without idempotency keys (``recent``): those may pass on the row as
this process last read it, less than ``check_seconds`` ago (2 s by default,
as the default of the server's ``queue_cache_seconds``), by any read of the
row (a check, ``get_queue``, the marks of waiting readers): a warm post reads
no metadata. Only a match is taken from memory: a copy that differs from the
row remembered is checked against the stored row, so nothing is refused on a
remembered row. This process's own updates and deletions forget the row at
once (and a read that overlapped one is not remembered), so the window is
another web node's: for up to ``check_seconds`` after another node deleted
the queue or changed its partition count or consistency, this node may still
store posts through a copy read before, as if they had come before the
change (into the deleted incarnation, where nothing reads them and they
expire; or with the old settings: to partitions the queue still has, at the
old level). The check was never atomic with the write on Cassandra (a
deletion may land between the two); this widens that window from a round
trip to ``check_seconds``. Posts with idempotency keys, overwrites by id and
the targets of acknowledge-and-publish always read the row: a completion
writes ids up to half the settle delay old, which must be the stored
consistency's (``idempotency.py``).
"""

from __future__ import annotations

import json
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
#: Seconds a queue row read may pass a post's check (``Queues.check``), by default.
CHECK_SECONDS = 2.0
#: Queue rows remembered for checks, at most (all forgotten when there would be more).
CHECKED_ROWS = 10_000


def bucket(name: str) -> str:
    """The partition of the ``queues`` table a queue name falls in."""
    return name[:1]


def _queue(app: str, row: Any) -> Queue:
    """A queue row, its principles read as JSON (``statements.py``)."""
    return Queue(
        app=app,
        name=row.name,
        settings=QueueSettings(
            partitions=row.partitions,
            type=row.type,
            consistency=row.consistency,
            principles=tuple(json.loads(row.principles) or ()),
        ),
        created=row.created,
        handle=str(row.qid),
    )


def _same(a: Queue, b: Queue) -> bool:
    """The same incarnation, with the settings a write must honour."""
    return (a.handle, a.partitions, a.settings.consistency) == (
        b.handle,
        b.partitions,
        b.settings.consistency,
    )


class Queues:
    """The queues of one namespace."""

    def __init__(
        self, db: Connection, namespace: str, check_seconds: float = CHECK_SECONDS
    ) -> None:
        self._db = db
        self._namespace = namespace
        self._check_seconds = check_seconds
        #: (app, name) -> (monotonic deadline, the row as read), for checks of posts.
        self._read: dict[tuple[str, str], tuple[float, Queue]] = {}
        #: Updates and deletions this process began or ended: a read that overlapped
        #: one is not remembered.
        self._changes = 0

    def _remember(self, queue: Queue, changes: int) -> None:
        """Keep a row read while ``self._changes`` was ``changes`` (see ``check``)."""
        if self._check_seconds <= 0 or changes != self._changes:
            return
        if len(self._read) >= CHECKED_ROWS:
            self._read.clear()
        self._read[(queue.app, queue.name)] = (time.monotonic() + self._check_seconds, queue)

    def _changing(self, queue: Queue) -> None:
        """This process changes or deletes ``queue``'s row: forget it."""
        self._changes += 1
        self._read.pop((queue.app, queue.name), None)

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
        changes = self._changes
        rows = await self._db.meta("get_queue", (self._app(app), bucket(name), name))
        if not rows:
            self._read.pop((app, name), None)
            return None
        queue = _queue(app, rows[0])
        self._remember(queue, changes)
        return queue

    async def update(self, queue: Queue, settings: QueueSettings) -> Queue:
        """Compare-and-set on (incarnation, partition count), so the count never shrinks."""
        self._changing(queue)
        try:
            return await self._update(queue, settings)
        finally:
            self._changing(queue)

    async def _update(self, queue: Queue, settings: QueueSettings) -> Queue:
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
        self._changing(queue)
        try:
            await self._db.run(
                "delete_queue",
                (self._app(queue.app), bucket(queue.name), queue.name, uuid.UUID(queue.handle)),
                self._db.levels.meta,
            )
        finally:
            self._changing(queue)

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

    async def check(self, queue: Queue, *, recent: bool = False) -> None:
        """Refuse a write to a deleted queue (QueueNotFound) or on stale settings (QueueChanged).

        ``recent``: a row read less than ``check_seconds`` ago that matches
        ``queue`` will do (see the module's docstring); otherwise, and for any
        refusal, the stored row is read.
        """
        if recent:
            hit = self._read.get((queue.app, queue.name))
            if hit is not None and hit[0] > time.monotonic() and _same(hit[1], queue):
                return
        current = await self.get(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            raise QueueNotFound()
        if (current.partitions, current.settings.consistency) != (
            queue.partitions,
            queue.settings.consistency,
        ):
            raise QueueChanged()
