"""The file's key clock: message timestamps above every one ever committed to the file.

The ``clock`` row holds the largest key timestamp committed to the file. A
writer transaction reads it once, when its first key is taken, stamps keys
above it (and above this process's own last key, :class:`IdClock`), and writes
the new largest value back just before COMMIT. SQLite's write lock serialises
transactions, also between processes sharing the file, so keys increase in
commit order, even when the wall clock stands still or steps back, and a
reader paging with ``since`` never skips a message that commits later.
"""

from __future__ import annotations

import sqlite3

from queuey.storage.keys import IdClock


class TxnClock:
    """The key clock as one writer transaction sees it: read once, written once."""

    __slots__ = ("_clock", "_conn", "_floor", "_last")

    def __init__(self, conn: sqlite3.Connection, clock: IdClock) -> None:
        self._conn = conn
        self._clock = clock
        self._floor: int | None = None
        self._last: int | None = None

    def take(self, count: int) -> int:
        """Reserve ``count`` consecutive timestamps above everything committed; return the first."""
        if self._floor is None:
            row = self._conn.execute("SELECT last_ts FROM clock WHERE id = 0").fetchone()
            self._floor = int(row[0])
        first = self._clock.take(count, max(self._floor, self._last or 0))
        self._last = first + count - 1
        return first

    @property
    def last(self) -> int | None:
        """The largest timestamp this transaction took, if it took any."""
        return self._last

    def flush(self) -> None:
        """Record the largest timestamp taken, inside the transaction (before COMMIT)."""
        if self._last is not None:
            self._conn.execute("UPDATE clock SET last_ts = ? WHERE id = 0", (self._last,))
