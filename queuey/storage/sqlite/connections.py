"""Connections to the file: how one is opened, and the readers (a thread pool and the loop's own).

WAL lets every reader read while the writer writes. Reads run on a small pool
of threads, each with its own connection; a small read runs on the event
loop's own connection instead, because it costs less than the hand-off to a
thread and back (see :meth:`Readers.run`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from queuey.storage.base import StoreUnavailable

T = TypeVar("T")

#: Reads of at most this many rows may run on the event loop's thread.
SMALL_READ = 100
#: What a failed read raises: SQLite's errors, and binding a value SQLite cannot
#: take (a str that is no UTF-8: UnicodeEncodeError; an int beyond 64 bits).
READ_ERRORS = (sqlite3.Error, ValueError, OverflowError)


def connect(path: str, busy_timeout: float, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode that waits up to ``busy_timeout`` seconds for a lock.

    Autocommit mode: the writer issues BEGIN and COMMIT itself. Raises
    ``sqlite3.Error`` when the file cannot be opened.
    """
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout,
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if read_only:
        conn.execute("PRAGMA query_only = 1")
    return conn


class Readers:
    """Read connections of one file: ``threads`` pool threads plus the event loop's own."""

    def __init__(self, path: str, *, threads: int, busy_timeout: float) -> None:
        self._path = path
        self._threads = threads
        self._busy_timeout = busy_timeout
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._inline: sqlite3.Connection | None = None
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="queuey-sqlite-read")

    def close(self) -> None:
        """Wait for running reads, then close every connection. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
            self._inline = None
            self._local = threading.local()

    def _open(self) -> sqlite3.Connection:
        conn = connect(self._path, self._busy_timeout, read_only=True)
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._open()
            return fn(conn)
        except READ_ERRORS as exc:
            raise StoreUnavailable(f"SQLite read failed: {type(exc).__name__}: {exc}") from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T], small: bool = False) -> T:
        """``fn(connection)`` on a pool thread, or on the event loop's own connection if ``small``.

        A small read (a primary-key lookup, a short range of one partition) takes
        tens of microseconds from the page cache, less than the hand-off to a
        thread and back; WAL readers never wait for the writer, so it cannot
        stall the loop on a lock. Larger reads go to the pool.

        Raises :class:`StoreUnavailable` when closed, when SQLite fails or
        cannot take an argument.
        """
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is closed")
        if small:
            try:
                if self._inline is None:
                    self._inline = self._open()
                return fn(self._inline)
            except READ_ERRORS as exc:
                raise StoreUnavailable(f"SQLite read failed: {type(exc).__name__}: {exc}") from exc
        return await asyncio.get_running_loop().run_in_executor(pool, self._on_thread, fn)
