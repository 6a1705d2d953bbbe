"""WAL checkpoints on a thread of their own, ahead of the writer's.

SQLite copies the write-ahead log back into the database file (a
checkpoint) when a COMMIT finds the log past ``wal_autocheckpoint`` pages,
inside that COMMIT, and fsyncs the file while the writer waits. Every
request waiting on that transaction then waits for the copy and the fsync:
measured with consumer groups at a tenth of their top rate, one such COMMIT
took 79 ms and set the claims' p99 (53 ms; p50 1.7 ms).

So this thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own
connection every :data:`INTERVAL` seconds, and the log seldom grows to the
writer's threshold (``reserve.py`` keeps it at a quarter of the disk-full
reserve, so that the log always fits in the room the reserve gives back; it
stays as it is, the backstop for writes faster than this thread). A passive
checkpoint takes no lock that writers or readers wait for: it copies what no
reader still needs, and once all of the log is copied the writer's next
transaction writes the log from its beginning again. SQLite releases the GIL
while it copies and syncs. It checkpoints only after this process's writer
committed (``commits``): an idle server does not wake SQLite 50 times a
second, and every process sharing a file checkpoints its own writes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from queuey.storage.sqlite.connections import connect

log = logging.getLogger(__name__)

#: Seconds between passive checkpoints: at 20 MB of writes a second the log
#: then holds about 100 pages between two, below the writer's threshold.
INTERVAL = 0.02


class Checkpointer:
    """A thread checkpointing one file's write-ahead log, passively, every ``interval``."""

    def __init__(
        self,
        path: str,
        busy_timeout: float,
        commits: Callable[[], int],
        interval: float = INTERVAL,
    ) -> None:
        """``commits()``: how many transactions the writer has committed so far."""
        self._commits = commits
        self._path = path
        self._busy_timeout = busy_timeout
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Passive checkpoints run (for tests and stats).
        self.runs = 0

    def start(self) -> None:
        conn = connect(self._path, self._busy_timeout)
        self._thread = threading.Thread(
            target=self._loop, args=(conn,), name="queuey-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocking, briefly: at most one checkpoint). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self, conn: sqlite3.Connection) -> None:
        failing = False
        done = -1  # the writer's commits at the last checkpoint
        try:
            while not self._stop.wait(self._interval):
                commits = self._commits()
                if commits == done and not failing:
                    continue
                done = commits
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # a full disk, a locked file: try again later
                    if not failing:  # once per run of failures, not 50 times a second
                        log.warning("WAL checkpoint failed: %s", exc)
                    failing = True
                else:
                    failing = False
                    self.runs += 1
        finally:
            conn.close()
