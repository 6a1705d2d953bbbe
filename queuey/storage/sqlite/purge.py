"""Background reclamation of expired and deleted rows, in small batches.

Expired messages and idempotency keys go, and so do the messages and keys of
deleted queues. Reads hide expired rows at once; this only gives the space
back (a deleted queue's keys are already unreachable: a queue created again
gets a new id). Each batch is its own writer job (never fsynced), so
requests interleave with a long purge instead of waiting behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from queuey.storage.base import StoreUnavailable
from queuey.storage.sqlite.writer import Job, Txn, Writer

log = logging.getLogger(__name__)

_DELETE = "DELETE FROM messages WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?"
_DELETE_KEY = "DELETE FROM idempotency_keys WHERE qid = ? AND key = ?"


async def purge(writer: Writer, batch: int) -> int:
    """Delete expired messages and keys, and those of deleted queues, ``batch`` rows a transaction.

    Returns the number of rows deleted. Raises :class:`StoreUnavailable` if
    a batch fails; what earlier batches deleted stays deleted. On a full disk
    a batch that finds no room is tried again with half as many rows: every
    page a deletion changes needs room in the write-ahead log first.
    """
    total = 0
    size = batch

    async def run(job: Job[int]) -> int:
        nonlocal size
        while True:
            try:
                return await writer.submit(job, durable=False, frees=True)
            except StoreUnavailable:
                if not writer.disk_full or size == 1:
                    raise
                size = max(1, size // 2)

    def expired(conn: sqlite3.Connection, txn: Txn) -> int:
        rows = conn.execute(
            "SELECT qid, partition, ts, tail FROM messages WHERE expires <= ? LIMIT ?",
            (txn.now_ms, size),
        ).fetchall()
        conn.executemany(_DELETE, rows)
        return len(rows)

    def expired_keys(conn: sqlite3.Connection, txn: Txn) -> int:
        rows = conn.execute(
            "SELECT qid, key FROM idempotency_keys WHERE expires <= ? LIMIT ?",
            (txn.now_ms, size),
        ).fetchall()
        conn.executemany(_DELETE_KEY, rows)
        return len(rows)

    for job in (expired, expired_keys):
        while (done := await run(job)) > 0:
            total += done
            if done < size:
                break

    def dead(conn: sqlite3.Connection, txn: Txn) -> int:
        """One batch of the first deleted queue (messages, then keys); -1 when none is left."""
        row = conn.execute("SELECT qid FROM dead_queues LIMIT 1").fetchone()
        if row is None:
            return -1
        rows = conn.execute(
            "SELECT qid, partition, ts, tail FROM messages WHERE qid = ? LIMIT ?",
            (row[0], size),
        ).fetchall()
        if rows:
            conn.executemany(_DELETE, rows)
            return len(rows)
        keys = conn.execute(
            "SELECT qid, key FROM idempotency_keys WHERE qid = ? LIMIT ?", (row[0], size)
        ).fetchall()
        if not keys:
            conn.execute("DELETE FROM dead_queues WHERE qid = ?", (row[0],))
        conn.executemany(_DELETE_KEY, keys)
        return len(keys)

    while (done := await run(dead)) >= 0:
        total += done
    return total


class Purger:
    """Runs :func:`purge` every ``interval`` seconds, or sooner when woken."""

    def __init__(self, writer: Writer, *, interval: float, batch: int) -> None:
        self._writer = writer
        self._interval = interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Purge now (a queue was deleted) rather than at the next interval."""
        self._wake.set()

    async def run(self) -> int:
        """Purge once, now; see :func:`purge`."""
        return await purge(self._writer, self._batch)

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow the cancel of
            # stop() when a wake-up comes at the same time, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.run()
            except StoreUnavailable as exc:
                log.warning("purge postponed: %s", exc)
