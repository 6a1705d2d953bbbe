"""The embedded SQLite backend: one file, WAL, one writer thread with group commit.

Writes go to a single writer thread. It takes everything waiting, runs it in
one transaction and commits once, so one fsync serves every request in the
batch; the transaction is fsynced (``synchronous=FULL``) when any write in it
asks for ``strong`` or ``very_strong`` durability, and only committed
(``synchronous=NORMAL``, WAL) when all are ``weak``.

Message keys are stamped inside that transaction, above the largest key ever
committed to the file (the ``clock`` row). SQLite's write lock serialises
transactions, also between processes sharing the file, so keys increase in
commit order and a reader paging with ``since`` never skips or repeats one:
the settle delay is 0.

Reads run on a small pool of threads, each with its own connection; WAL lets
them read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from queuey.storage.base import (
    Message,
    NewMessage,
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    StorageUnavailable,
)
from queuey.storage.keys import IdClock, MessageKey, new_tail
from queuey.storage.sqlite_schema import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most jobs one transaction takes: bounds the latency of the first waiter.
MAX_BATCH = 1024
#: Reads of at most this many rows run on the event loop's thread (see ``_read``).
SMALL_READ = 100


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection, _Txn], Any]
    durable: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class _Txn:
    """State of one writer transaction: the shared key clock, read once, written once."""

    __slots__ = ("_clock", "_conn", "_floor", "_last", "now_ms")

    def __init__(self, conn: sqlite3.Connection, clock: IdClock) -> None:
        self._conn = conn
        self._clock = clock
        self._floor: int | None = None
        self._last: int | None = None
        self.now_ms = _ms(time.time())

    def take(self, count: int) -> int:
        """Reserve ``count`` consecutive timestamps above everything committed."""
        if self._floor is None:
            row = self._conn.execute("SELECT last_ts FROM clock WHERE id = 0").fetchone()
            self._floor = row[0]
        first = self._clock.take(count, max(self._floor, self._last or 0))
        self._last = first + count - 1
        return first

    def flush(self) -> None:
        if self._last is not None:
            self._conn.execute("UPDATE clock SET last_ts = ? WHERE id = 0", (self._last,))


def _queue_from_row(row: Sequence[Any]) -> Queue:
    handle, app, name, partitions, qtype, consistency, principles, created = row
    return Queue(
        app=app,
        name=name,
        settings=QueueSettings(
            partitions=partitions,
            type=qtype,
            consistency=consistency,
            principles=tuple(principles.split(",")) if principles else (),
        ),
        created=created,
        handle=str(handle),
    )


_QUEUE_COLUMNS = "id, app, name, partitions, type, consistency, principles, created"
_SELECT_MESSAGE = "SELECT ts, tail, body, content_type FROM messages"


def _queue_current(conn: sqlite3.Connection, queue: Queue) -> None:
    """Refuse (before writing) a write to a deleted queue or with stale settings."""
    row = conn.execute(
        "SELECT partitions, consistency FROM queues WHERE id = ?", (int(queue.handle),)
    ).fetchone()
    if row is None:
        raise QueueNotFound()
    if tuple(row) != (queue.partitions, queue.settings.consistency):
        raise QueueChanged()


class SQLiteStorage:
    """A :class:`queuey.storage.base.Storage` on one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        readers: int = 4,
        purge_interval: float = 30.0,
        purge_batch: int = 1000,
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = str(path)
        self._readers = readers
        self._purge_interval = purge_interval
        self._purge_batch = purge_batch
        self._busy_timeout = busy_timeout
        self._clock = IdClock()
        self._tail = new_tail()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._inline: sqlite3.Connection | None = None
        self._conns_lock = threading.Lock()
        self._purger: asyncio.Task[None] | None = None
        self._purge_wake = asyncio.Event()
        self._closed = True
        #: Transactions committed, and how many of them were fsynced (for tests and stats).
        self.commits = 0
        self.synced_commits = 0

    # -- lifecycle -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
            timeout=self._busy_timeout,
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    async def start(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._connect()
            migrate(conn)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="queuey-sqlite-read")
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="queuey-sqlite-write", daemon=True
        )
        self._closed = False
        self._writer.start()
        self._purge_wake = asyncio.Event()
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        self._jobs.put(None)
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
            self._inline = None

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT last_ts FROM clock").fetchone())
        if self._writer is None or not self._writer.is_alive():
            raise StorageUnavailable("the SQLite writer is not running")

    def settle_seconds(self, consistency: str) -> float:
        # Keys are stamped in commit order: a message is visible exactly when committed.
        return 0.0

    # -- plumbing ----------------------------------------------------------

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._reader_conn())
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite read failed: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T], small: bool = False) -> T:
        """Run a read on a pool thread, or on the event loop's own connection if ``small``.

        A small read (a primary-key lookup, a short range of one partition) takes
        tens of microseconds from the page cache, less than the hand-off to a thread
        and back; WAL readers never wait for the writer, so it cannot stall the loop
        on a lock. Larger reads go to the pool.
        """
        if self._closed or self._pool is None:
            raise StorageUnavailable("the store is closed")
        if small:
            if self._inline is None:
                self._inline = self._connect()
                self._inline.execute("PRAGMA query_only = 1")
                with self._conns_lock:
                    self._read_conns.append(self._inline)
            try:
                return fn(self._inline)
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"SQLite read failed: {exc}") from exc
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run_read, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection, _Txn], T], durable: bool) -> T:
        if self._closed:
            raise StorageUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, durable, future, loop))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        synchronous = "NORMAL"
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                wanted = "FULL" if any(j.durable for j in batch) else "NORMAL"
                if wanted != synchronous:
                    try:
                        conn.execute(f"PRAGMA synchronous = {wanted}")
                        synchronous = wanted
                    except sqlite3.Error:
                        log.exception("cannot set synchronous=%s", wanted)
                results = self._run_batch(conn, batch)
                self.commits += 1
                self.synced_commits += synchronous == "FULL"
                self._resolve(results)
                if stop:
                    return
        finally:
            conn.close()
            # Anything still queued will never run: fail it rather than hang its caller.
            leftovers: list[tuple[_Job, Any, BaseException | None]] = []
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    leftovers.append((job, None, StorageUnavailable("the store is closed")))
            self._resolve(leftovers)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        """Run every job in one transaction and commit once.

        Jobs check before they write (``QueueNotFound``, ``QueueChanged``),
        so such a refusal needs no savepoint. Any other failure rolls the whole
        transaction back; the jobs then run one per transaction, so only the
        faulty one fails, unless the file is locked, which fails them all.
        """
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            txn = _Txn(conn, self._clock)
            for job in batch:
                try:
                    value = job.fn(conn, txn)
                except (QueueNotFound, QueueChanged) as exc:
                    results.append((job, None, exc))
                else:
                    results.append((job, value, None))
            txn.flush()
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
            if len(batch) > 1 and not locked:
                return [r for job in batch for r in self._run_batch(conn, [job])]
            log.warning("SQLite transaction failed: %s", exc)
            error = (
                StorageUnavailable(f"SQLite write failed: {exc}")
                if isinstance(exc, sqlite3.Error)
                else exc
            )
            return [(job, None, error) for job in batch]
        return results

    @staticmethod
    def _resolve(results: list[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for item in results:
            by_loop.setdefault(item[0].loop, []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, items)

    # -- queues ------------------------------------------------------------

    async def create_queue(
        self, app: str, name: str, settings: QueueSettings
    ) -> tuple[Queue, bool]:
        def create(conn: sqlite3.Connection, txn: _Txn) -> tuple[Queue, bool]:
            cur = conn.execute(
                "INSERT INTO queues (app, name, partitions, type, consistency, principles, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, name) DO NOTHING",
                (
                    app,
                    name,
                    settings.partitions,
                    settings.type,
                    settings.consistency,
                    ",".join(settings.principles),
                    round(time.time(), 3),
                ),
            )
            row = conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name = ?", (app, name)
            ).fetchone()
            return _queue_from_row(row), cur.rowcount == 1

        return await self._write(create, durable=True)

    async def get_queue(self, app: str, name: str) -> Queue | None:
        def get(conn: sqlite3.Connection) -> Queue | None:
            row = conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name = ?", (app, name)
            ).fetchone()
            return None if row is None else _queue_from_row(row)

        return await self._read(get, small=True)

    async def update_queue(self, queue: Queue, settings: QueueSettings) -> Queue:
        qid = int(queue.handle)

        def update(conn: sqlite3.Connection, txn: _Txn) -> Queue:
            # MAX(): two concurrent updates can never shrink the partition count.
            conn.execute(
                "UPDATE queues SET partitions = MAX(partitions, ?), type = ?, consistency = ?,"
                " principles = ? WHERE id = ?",
                (
                    settings.partitions,
                    settings.type,
                    settings.consistency,
                    ",".join(settings.principles),
                    qid,
                ),
            )
            row = conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE id = ?", (qid,)
            ).fetchone()
            if row is None:
                raise QueueNotFound()
            return _queue_from_row(row)

        return await self._write(update, durable=True)

    async def delete_queue(self, queue: Queue) -> None:
        qid = int(queue.handle)

        def delete(conn: sqlite3.Connection, txn: _Txn) -> None:
            # The row goes now (every later lookup misses); messages go in the background.
            if conn.execute("DELETE FROM queues WHERE id = ?", (qid,)).rowcount:
                conn.execute("INSERT OR IGNORE INTO dead_queues (qid) VALUES (?)", (qid,))

        await self._write(delete, durable=True)
        self._purge_wake.set()

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        def page(conn: sqlite3.Connection) -> list[Queue]:
            rows = conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name >= ?"
                " ORDER BY name LIMIT ?",
                (app, start or "", limit),
            ).fetchall()
            return [_queue_from_row(row) for row in rows]

        return await self._read(page, small=limit <= SMALL_READ)

    async def count_messages(self, queue: Queue) -> int:
        qid = int(queue.handle)

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE qid = ? AND expires > ?",
                (qid, _ms(time.time())),
            ).fetchone()
            return int(row[0])

        return await self._read(count)

    # -- messages ----------------------------------------------------------

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[MessageKey]:
        qid = int(queue.handle)
        tail = self._tail

        def post(conn: sqlite3.Connection, txn: _Txn) -> list[MessageKey]:
            _queue_current(conn, queue)
            first = txn.take(len(messages))
            now = txn.now_ms
            keys = [MessageKey(first + i, tail) for i in range(len(messages))]
            conn.executemany(
                "INSERT INTO messages (qid, partition, ts, tail, expires, content_type, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (qid, m.partition, k.ts, tail, now + m.ttl * 1000, m.content_type, m.body)
                    for m, k in zip(messages, keys, strict=True)
                ],
            )
            return keys

        return await self._write(post, durable=queue.settings.consistency != "weak")

    async def read_range(
        self,
        queue: Queue,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
    ) -> list[Message]:
        qid = int(queue.handle)
        order = "DESC" if descending else "ASC"
        args: tuple[int | bytes, ...] = ()
        where = ""
        if since is not None:
            # Spelled out rather than as a row value so the primary key drives the seek.
            # Descending scans start at ``since`` and go back: key <= since. A pure
            # time bound (empty tail) includes every message of its tick either way.
            if descending:
                where = " AND ts <= ? AND (ts < ? OR tail <= ?)"
                args = (since.ts, since.ts, since.tail or b"\xff" * 8)
            else:
                where = " AND ts >= ? AND (ts > ? OR tail >= ?)"
                args = (since.ts, since.ts, since.tail)
        sql = (
            f"{_SELECT_MESSAGE} WHERE qid = ? AND partition = ?{where} AND expires > ?"
            f" ORDER BY ts {order}, tail {order} LIMIT ?"
        )

        def scan(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(sql, (qid, partition, *args, _ms(time.time()), limit)).fetchall()
            return [
                Message(MessageKey(ts, tail), partition, body, ct) for ts, tail, body, ct in rows
            ]

        return await self._read(scan, small=limit <= SMALL_READ)

    async def get_messages(
        self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]
    ) -> list[Message]:
        qid = int(queue.handle)

        def fetch(conn: sqlite3.Connection) -> list[Message]:
            now = _ms(time.time())
            found = []
            for partition, key in keys:
                row = conn.execute(
                    f"{_SELECT_MESSAGE} WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?"
                    " AND expires > ?",
                    (qid, partition, key.ts, key.tail, now),
                ).fetchone()
                if row is not None:
                    found.append(Message(key, partition, row[2], row[3]))
            return found

        return await self._read(fetch, small=len(keys) <= SMALL_READ)

    async def put_messages(
        self,
        queue: Queue,
        keys: Sequence[tuple[int, MessageKey]],
        body: str,
        content_type: str,
        ttl: int,
    ) -> None:
        qid = int(queue.handle)

        def put(conn: sqlite3.Connection, txn: _Txn) -> None:
            _queue_current(conn, queue)
            expires = txn.now_ms + ttl * 1000
            conn.executemany(
                "INSERT OR REPLACE INTO messages (qid, partition, ts, tail, expires,"
                " content_type, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(qid, p, k.ts, k.tail, expires, content_type, body) for p, k in keys],
            )

        await self._write(put, durable=queue.settings.consistency != "weak")

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        qid = int(queue.handle)

        def delete(conn: sqlite3.Connection, txn: _Txn) -> None:
            conn.executemany(
                "DELETE FROM messages WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?",
                [(qid, p, k.ts, k.tail) for p, k in keys],
            )

        await self._write(delete, durable=queue.settings.consistency != "weak")

    # -- background purge ----------------------------------------------------

    async def purge(self) -> int:
        """Delete expired messages and those of deleted queues, in small batches.

        Each batch is its own writer job, so requests interleave with a long
        purge instead of waiting behind it. Returns the number of rows deleted.
        """
        total = 0
        batch = self._purge_batch

        def expired(conn: sqlite3.Connection, txn: _Txn) -> int:
            rows = conn.execute(
                "SELECT qid, partition, ts, tail FROM messages WHERE expires <= ? LIMIT ?",
                (txn.now_ms, batch),
            ).fetchall()
            conn.executemany(
                "DELETE FROM messages WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?", rows
            )
            return len(rows)

        while (done := await self._write(expired, durable=False)) > 0:
            total += done
            if done < batch:
                break

        def dead(conn: sqlite3.Connection, txn: _Txn) -> int:
            row = conn.execute("SELECT qid FROM dead_queues LIMIT 1").fetchone()
            if row is None:
                return -1
            rows = conn.execute(
                "SELECT qid, partition, ts, tail FROM messages WHERE qid = ? LIMIT ?",
                (row[0], batch),
            ).fetchall()
            if not rows:
                conn.execute("DELETE FROM dead_queues WHERE qid = ?", (row[0],))
            conn.executemany(
                "DELETE FROM messages WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?", rows
            )
            return len(rows)

        while (done := await self._write(dead, durable=False)) >= 0:
            total += done
        return total

    async def _purge_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._purge_wake.wait(), self._purge_interval)
            self._purge_wake.clear()
            try:
                await self.purge()
            except StorageUnavailable as exc:
                log.warning("purge postponed: %s", exc)


def _settle(items: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, value, error in items:
        if job.future.done():  # the request went away
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)
