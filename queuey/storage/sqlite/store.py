"""SQLiteStorage: the storage contract on one SQLite file, glued from this package's parts.

Writes go to the file's single writer thread (``writer.py``: group commit,
fsync for ``strong``/``very_strong``), keys are stamped inside it above the
file's key clock (``clock.py``), reads go to the readers (``connections.py``),
the SQL lives in ``queues.py`` and ``messages.py``, and ``purge.py`` reclaims
space in the background. The schema is migrated at start (``schema.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from queuey.storage.base import (
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueChanged,
    QueueMark,
    QueueNotFound,
    QueueSettings,
    StoreUnavailable,
)
from queuey.storage.groups import (
    Action,
    Delivery,
    Group,
    GroupNotFound,
    GroupReport,
    GroupSettings,
    Position,
    Settled,
)
from queuey.storage.keys import MessageKey, new_tail
from queuey.storage.sqlite import groups as group_sql
from queuey.storage.sqlite import messages as message_sql
from queuey.storage.sqlite import queues as queue_sql
from queuey.storage.sqlite.checkpoint import Checkpointer
from queuey.storage.sqlite.connections import SMALL_READ, Readers, connect
from queuey.storage.sqlite.marks import MarkReader
from queuey.storage.sqlite.purge import Purger
from queuey.storage.sqlite.reserve import Reserve, Space
from queuey.storage.sqlite.schema import migrate
from queuey.storage.sqlite.writer import Txn, Writer
from queuey.storage.window import Receipt

#: Defaults of the constructor's knobs (see :class:`SQLiteStorage`).
READERS = 4
BUSY_TIMEOUT = 10.0
PURGE_BATCH = 1000
PURGE_INTERVAL = 30.0
IDEMPOTENCY_WINDOW = 86400
RESERVE_BYTES = 8 * 1024 * 1024


class SQLiteStorage:
    """A :class:`queuey.storage.base.Storage` on one SQLite file.

    ``path``: the file (its directory is created); several processes may
    share it. The knobs:

    ``readers``
        Threads (each with its own connection) that run reads too large for
        the event loop's own connection. Default 4.
    ``busy_timeout``
        Seconds a connection waits for another process's lock on the file
        before the call fails with :class:`StoreUnavailable`. Default 10.
    ``purge_batch``
        Rows the background purge deletes per writer transaction: small
        batches let requests in between. Default 1000.
    ``purge_interval``
        Seconds between background purges (a queue deletion starts one at
        once). Default 30.
    ``idempotency_window``
        Seconds a message's idempotency key is remembered, counted from its
        first post (``post_messages``). Default 86400.
    ``reserve_bytes``
        Disk held in ``<path>.reserve`` and given up when the disk fills, so
        deletions can still commit (``reserve.py``); 0 for none. Default 8 MiB.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readers: int = READERS,
        busy_timeout: float = BUSY_TIMEOUT,
        purge_batch: int = PURGE_BATCH,
        purge_interval: float = PURGE_INTERVAL,
        idempotency_window: int = IDEMPOTENCY_WINDOW,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        if readers < 1 or purge_batch < 1 or busy_timeout < 0 or purge_interval <= 0:
            raise ValueError("readers and purge_batch must be >= 1, the durations positive")
        if idempotency_window < 1:
            raise ValueError("idempotency_window must be at least 1 second")
        if reserve_bytes < 0:
            raise ValueError("reserve_bytes must not be negative")
        self.path = str(path)
        self.readers = readers
        self.busy_timeout = busy_timeout
        self.purge_batch = purge_batch
        self.purge_interval = purge_interval
        self.idempotency_window = idempotency_window
        self._tail = new_tail()
        self._readers = Readers(self.path, threads=readers, busy_timeout=busy_timeout)
        in_memory = self.path == ":memory:"
        reserve = None if in_memory else Reserve(f"{self.path}.reserve", reserve_bytes)
        self._writer = Writer(
            refusals=(QueueNotFound, QueueChanged, GroupNotFound), space=Space(reserve)
        )
        self._secret: bytes | None = None
        #: Decoded group windows, used by the writer thread only.
        self._windows = group_sql.Windows()
        self._purger = _Purger(self._writer, interval=purge_interval, batch=purge_batch)
        self._marks = MarkReader()
        self._checkpointer = (
            None
            if in_memory
            else Checkpointer(self.path, busy_timeout, lambda: self._writer.commits)
        )
        self._started = False

    def observe(
        self,
        on_commit: Callable[[int, bool, float], None] | None = None,
        on_purge: Callable[[int], None] | None = None,
    ) -> None:
        """The stats hook (optional on the storage contract; the HTTP layer's metrics use it).

        ``on_commit(jobs, fsynced, seconds)`` after each writer transaction (on the
        writer's thread): the group commit's size, and the time of its COMMIT;
        ``on_purge(rows)`` after each background or explicit purge.
        """
        self._writer.on_commit = on_commit
        self._purger.on_purge = on_purge

    @property
    def commits(self) -> int:
        """Transactions the writer committed (for tests and stats)."""
        return self._writer.commits

    @property
    def synced_commits(self) -> int:
        """Committed transactions that were fsynced (``synchronous=FULL``)."""
        return self._writer.synced_commits

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect(self.path, self.busy_timeout)
            try:
                migrate(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._readers.start()
        self._writer.start(conn)
        if self._checkpointer is not None:
            self._checkpointer.start()
        self._purger.start()
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await self._purger.stop()
        await self._writer.stop()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._readers.close()

    async def ping(self) -> None:
        await self._readers.run(
            lambda conn: conn.execute("SELECT last_ts FROM clock").fetchone(), small=True
        )
        if not self._writer.alive:
            raise StoreUnavailable("the SQLite writer is not running")
        failure = self._writer.failure
        if failure is not None:
            raise StoreUnavailable(f"SQLite writes fail: {failure}")

    def settle_seconds(self, consistency: str) -> float:
        # Keys are stamped in commit order: a message is visible exactly when committed.
        return 0.0

    # -- queues ------------------------------------------------------------

    async def create_queue(
        self, app: str, name: str, settings: QueueSettings
    ) -> tuple[Queue, bool]:
        return await self._writer.submit(
            lambda conn, txn: queue_sql.create(conn, app, name, settings), durable=True
        )

    async def get_queue(self, app: str, name: str) -> Queue | None:
        return await self._readers.run(lambda conn: queue_sql.get(conn, app, name), small=True)

    async def update_queue(self, queue: Queue, settings: QueueSettings) -> Queue:
        qid = int(queue.handle)
        return await self._writer.submit(
            lambda conn, txn: queue_sql.update(conn, qid, settings), durable=True
        )

    async def delete_queue(self, queue: Queue) -> None:
        qid = int(queue.handle)

        def delete(conn: sqlite3.Connection, txn: Txn) -> None:
            queue_sql.delete(conn, qid)
            group_sql.delete_of_queue(conn, qid)

        await self._writer.submit(delete, durable=True, frees=True)
        self._purger.wake()

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        return await self._readers.run(
            lambda conn: queue_sql.page(conn, app, start, limit), small=limit <= SMALL_READ
        )

    async def count_messages(self, queue: Queue) -> int:
        qid = int(queue.handle)
        return await self._readers.run(lambda conn: message_sql.count(conn, qid))

    # -- messages ----------------------------------------------------------

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[Posted]:
        tail, window = self._tail, self.idempotency_window
        return await self._writer.submit(
            lambda conn, txn: message_sql.post(conn, txn, queue, tail, messages, window),
            durable=queue.settings.consistency != "weak",
        )

    async def read_range(
        self,
        queue: Queue,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
    ) -> list[Message]:
        scan = message_sql.RangeScan(int(queue.handle), partition, since, limit, descending)
        return await self._readers.run(scan, small=limit <= SMALL_READ)

    async def get_messages(
        self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]
    ) -> list[Message]:
        qid = int(queue.handle)
        return await self._readers.run(
            lambda conn: message_sql.fetch(conn, qid, keys), small=len(keys) <= SMALL_READ
        )

    async def put_messages(
        self,
        queue: Queue,
        keys: Sequence[tuple[int, MessageKey]],
        body: str,
        content_type: str,
        ttl: int,
    ) -> None:
        def job(conn: sqlite3.Connection, txn: Txn) -> None:
            message_sql.put(conn, txn, queue, keys, body, content_type, ttl)
            # A message created by id may lie behind a group's frontier: scan for it.
            group_sql.rescan(conn, self._windows, txn, int(queue.handle), keys)

        await self._writer.submit(job, durable=queue.settings.consistency != "weak")

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        qid = int(queue.handle)
        await self._writer.submit(
            lambda conn, txn: message_sql.delete(conn, qid, keys),
            durable=queue.settings.consistency != "weak",
            frees=True,
        )

    async def marks(self, queues: Sequence[Queue]) -> list[QueueMark]:
        qids = [int(q.handle) for q in queues]
        # On the loop's own connection: one pragma when nothing committed, one
        # indexed read per 500 queues when something did.
        return await self._readers.run(lambda conn: self._marks(conn, qids), small=True)

    # -- consumer groups (storage.groups.GroupStorage) -------------------------

    async def receipt_secret(self) -> bytes:
        if self._secret is None:
            row = await self._readers.run(
                lambda conn: conn.execute(
                    "SELECT value FROM secrets WHERE name = 'receipts'"
                ).fetchone(),
                small=True,
            )
            self._secret = bytes(row[0])
        return self._secret

    async def create_group(
        self, queue: Queue, name: str, settings: GroupSettings, start: Position
    ) -> tuple[Group, bool]:
        return await self._writer.submit(
            lambda conn, txn: group_sql.create(
                conn, self._windows, txn, queue, name, settings, start
            ),
            durable=True,
        )

    async def get_group(self, queue: Queue, name: str) -> Group | None:
        return await self._readers.run(lambda conn: group_sql.get(conn, queue, name), small=True)

    async def list_groups(self, queue: Queue) -> list[Group]:
        return await self._readers.run(lambda conn: group_sql.page(conn, queue))

    async def update_group(self, group: Group, settings: GroupSettings) -> Group:
        return await self._writer.submit(
            lambda conn, txn: group_sql.update(conn, group, settings), durable=True
        )

    async def delete_group(self, group: Group) -> None:
        await self._writer.submit(
            lambda conn, txn: group_sql.delete(conn, group), durable=True, frees=True
        )

    async def claim(
        self,
        group: Group,
        partitions: Sequence[int],
        limit: int,
        consumer: str | None,
        max_in_flight: int,
    ) -> list[Delivery]:
        tail = self._tail
        return await self._writer.submit(
            lambda conn, txn: group_sql.claim(
                conn, self._windows, txn, tail, group, partitions, limit, consumer, max_in_flight
            ),
            durable=group.queue.settings.consistency != "weak",
        )

    async def settle(
        self,
        group: Group,
        action: Action,
        receipts: Sequence[Receipt],
        seconds: int,
        publish: Sequence[tuple[Queue, NewMessage]] = (),
    ) -> Settled:
        tail, window = self._tail, self.idempotency_window
        durable = group.queue.settings.consistency != "weak" or any(
            q.settings.consistency != "weak" for q, _ in publish
        )
        return await self._writer.submit(
            lambda conn, txn: group_sql.settle(
                conn, self._windows, txn, tail, group, action, receipts, seconds, 0, publish, window
            ),
            durable=durable,
        )

    async def seek(self, group: Group, partitions: Sequence[int], to: Position) -> None:
        await self._writer.submit(
            lambda conn, txn: group_sql.seek(conn, self._windows, txn, group, partitions, to),
            durable=group.queue.settings.consistency != "weak",
        )

    async def report(self, group: Group) -> GroupReport:
        tail = self._tail
        return await self._writer.submit(
            lambda conn, txn: group_sql.report(conn, self._windows, txn, tail, group),
            durable=group.queue.settings.consistency != "weak",
        )

    # -- background purge ----------------------------------------------------

    async def purge(self) -> int:
        """Reclaim expired messages and those of deleted queues now; return the rows deleted.

        Each batch is its own writer job, so requests interleave with a long purge.
        """
        return await self._purger.run()


class _Purger(Purger):
    """The purge, telling the stats hook how many rows each run deleted."""

    on_purge: Callable[[int], None] | None = None

    async def run(self) -> int:
        rows = await super().run()
        if self.on_purge is not None:
            self.on_purge(rows)
        return rows
