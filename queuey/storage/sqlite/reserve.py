"""A full disk: the reserve file beside the database, given up so deletions can commit.

SQLite needs disk space even to delete: every page a transaction changes is
first appended to the write-ahead log, and a checkpoint grows the file with
the pages that so far live only in the log. On a full disk deletions would
fail like every other write, and nothing could make room again. So the store
keeps ``reserve_bytes`` of allocated disk in ``<db>.reserve``
(:class:`Reserve`). When a write fails for want of space (SQLITE_FULL) the
writer gives the reserve up and checkpoints (:meth:`Space.on_full`); from
then on it runs only jobs that free space — deletions and the purge — and
refuses the others at once (:meth:`Space.admits`), so they cannot eat the
room the deletions need, until space returns: a reserve's worth of free
pages inside the file (where later writes go without growing it), or room
on the disk to hold the reserve again.

The log's automatic checkpoint is set to a quarter of the reserve (never
above SQLite's default of 1000 pages), so the pages waiting in the log
always fit in the space the reserve gives back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time

log = logging.getLogger(__name__)

#: SQLite's default automatic checkpoint, in pages of the log.
CHECKPOINT_PAGES = 1000
#: Seconds between two looks at the disk for room to hold the reserve again.
RETRY_SECONDS = 1.0


class Reserve:
    """``size`` bytes of allocated disk in one file, held or given up."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size

    def hold(self) -> bool:
        """Allocate the file (keep it if it is there); False when the disk has no room for it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # blocks on disk, not a sparse file
                os.ftruncate(fd, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.release()
            return False
        return True

    def release(self) -> bool:
        """Delete the file; True if it was there."""
        try:
            os.unlink(self.path)
        except OSError:
            return False
        return True

    def room(self) -> int:
        """Bytes free on the file's disk (for an unprivileged process)."""
        try:
            stats = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return 0
        return stats.f_bavail * stats.f_frsize


class Space:
    """What the writer knows of the disk: whether writes wait for room, and the reserve.

    Used on the writer's thread only. Without a reserve (``reserve`` None, or
    size 0) a full disk is only reported: every write is still tried.
    """

    def __init__(self, reserve: Reserve | None) -> None:
        self._reserve = reserve if reserve is not None and reserve.size > 0 else None
        self._held = False
        self._page_size = 4096
        self._next_look = 0.0
        #: True from a write that found the disk full until space returns.
        self.full = False

    def start(self, conn: sqlite3.Connection) -> None:
        """Hold the reserve (if there is room) and size the log's checkpoints to it."""
        self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        if self._reserve is None:
            return
        pages = min(CHECKPOINT_PAGES, max(16, self._reserve.size // self._page_size // 4))
        conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        self._held = self._reserve.hold()
        if not self._held:
            log.warning(
                "no room for the disk-full reserve (%d bytes) at %s; will try again",
                self._reserve.size,
                self._reserve.path,
            )

    def admits(self, frees: bool) -> bool:
        """May a job run now? One that frees space always may; others not while the disk is full."""
        if not self.full or frees or self._reserve is None:
            return True
        self._look_for_room()
        return not self.full

    def on_full(self, conn: sqlite3.Connection) -> bool:
        """A transaction found no room: give the reserve up and checkpoint.

        Returns True if the reserve was given up just now (a deletion that
        failed may then be tried once more).
        """
        self.full = True
        released = self._held and self._reserve is not None and self._reserve.release()
        self._held = False
        if released:
            assert self._reserve is not None
            log.warning(
                "the disk is full: gave up the reserve (%d bytes) so deletions can commit;"
                " other writes are refused until space returns",
                self._reserve.size,
            )
        # Move the log into the file (growing it into the room just freed), so the next
        # transactions write the log from its start again instead of growing it.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return released

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """A transaction committed: has space returned? Is there room for the reserve again?"""
        if self.full:
            free = int(conn.execute("PRAGMA freelist_count").fetchone()[0]) * self._page_size
            wanted = self._reserve.size if self._reserve is not None else 0
            if free >= wanted:
                self.full = False
                log.warning("space returned (%d bytes free in the file): writes resume", free)
        if not self._held:
            self._look_for_room()

    def _look_for_room(self) -> None:
        """Hold the reserve again if the disk has room for it twice over (at most once a second)."""
        reserve = self._reserve
        now = time.monotonic()
        if reserve is None or self._held or now < self._next_look:
            return
        self._next_look = now + RETRY_SECONDS
        if reserve.room() >= 2 * reserve.size and reserve.hold():
            self._held = True
            if self.full:
                self.full = False
                log.warning("space returned on the disk: the reserve is held again, writes resume")
