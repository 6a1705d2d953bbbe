"""Change marks of queues on SQLite: how waiting readers hear of other processes' writes.

Every writer transaction that writes messages to a queue sets the queue's
row in ``queue_marks`` to the largest key timestamp it took
(``Txn.touch``), so a queue's mark moves with every commit that gives it
messages — posts, overwrites by id, dead letters and acknowledge-and-publish
alike — in commit order, also across processes sharing the file.

Reading them (:class:`MarkReader`) is cheaper still: ``PRAGMA data_version``
changes only when another connection committed to the file, so while it
stands still the marks read last are answered from memory, and a round of
polls over thousands of waited queues costs one pragma.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

from queuey.storage.base import QueueMark
from queuey.storage.keys import MessageKey

#: Queue ids per read (SQLite allows 32,766 parameters; a modest IN list stays fast).
CHUNK = 500


def mark_all(conn: sqlite3.Connection, qids: Collection[int], ts: int) -> None:
    """Set the mark of each queue id to ``ts`` (inside the writer's transaction)."""
    conn.executemany(
        "INSERT INTO queue_marks (qid, ts) VALUES (?, ?)"
        " ON CONFLICT (qid) DO UPDATE SET ts = excluded.ts",
        [(qid, ts) for qid in qids],
    )


def forget(conn: sqlite3.Connection, qid: int) -> None:
    """Drop a deleted queue's mark (its readers learn it is gone from ``queues``)."""
    conn.execute("DELETE FROM queue_marks WHERE qid = ?", (qid,))


class MarkReader:
    """Answers ``Storage.marks`` on one read connection, from memory while nothing committed."""

    def __init__(self) -> None:
        self._version: int | None = None
        self._known: dict[int, QueueMark] = {}

    def __call__(self, conn: sqlite3.Connection, qids: Sequence[int]) -> list[QueueMark]:
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._version, self._known = version, {}
        missing = [qid for qid in dict.fromkeys(qids) if qid not in self._known]
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            found = dict(
                conn.execute(
                    "SELECT q.id, m.ts FROM queues q LEFT JOIN queue_marks m ON m.qid = q.id"
                    f" WHERE q.id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )
            for qid in chunk:
                if qid not in found:
                    self._known[qid] = QueueMark(None, None, gone=True)
                else:
                    ts = found[qid]
                    newest = None if ts is None else MessageKey(int(ts), b"")
                    self._known[qid] = QueueMark(ts, newest, ordered=True)
        return [self._known[qid] for qid in qids]
