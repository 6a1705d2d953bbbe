"""Message rows: post (keys stamped in the writer), range scans, lookups, overwrites, deletes.

A message row is keyed by (queue id, partition, ts, tail), ``WITHOUT ROWID``:
a range scan of one partition is a walk of the primary key. Expired rows stay
until the purge takes them, so every read filters on ``expires``.
Functions that write run inside the writer's transaction.

Idempotency keys: ``idempotency_keys`` holds, per (queue id, key), the key and
partition the message was posted with and when the key expires. ``post`` looks
a key up and records it inside the writer's transaction, together with the
message: SQLite's write lock serialises those transactions, also between
processes sharing the file, so two posts with one key can never both store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from queuey.storage.base import Message, NewMessage, Posted, Queue
from queuey.storage.keys import MessageKey
from queuey.storage.sqlite.queues import check_current
from queuey.storage.sqlite.writer import Txn, now_ms

_SELECT = "SELECT ts, tail, body, content_type FROM messages"
_INSERT = (
    "INSERT INTO messages (qid, partition, ts, tail, expires, content_type, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM messages WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?"
#: A pure time bound's tail when scanning down: at or above every real tail.
_MAX_TAIL = b"\xff" * 8
_FIND_KEY = (
    "SELECT partition, ts, tail FROM idempotency_keys WHERE qid = ? AND key = ? AND expires > ?"
)
# OR REPLACE: an expired row the purge has not reclaimed yet gives way.
_RECORD_KEY = (
    "INSERT OR REPLACE INTO idempotency_keys (qid, key, partition, ts, tail, expires)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def post(
    conn: sqlite3.Connection,
    txn: Txn,
    queue: Queue,
    tail: bytes,
    messages: Sequence[NewMessage],
    window: int,
) -> list[Posted]:
    """Check the queue, stamp keys above the file's clock and insert every new message.

    A message whose idempotency key is recorded and unexpired (or was given
    earlier in ``messages``) is answered with the recorded place instead;
    the keys of the others are recorded for ``window`` seconds.
    """
    check_current(conn, queue)
    qid = int(queue.handle)
    now = txn.now_ms
    placed: dict[int, Posted] = {}  # by index in ``messages``
    first_of: dict[str, int] = {}  # idempotency key -> index of its first item
    fresh: list[int] = []  # indexes of the messages to store
    for i, m in enumerate(messages):
        key = m.idempotency_key
        if key is not None:
            if key in first_of:
                continue
            first_of[key] = i
            row = conn.execute(_FIND_KEY, (qid, key, now)).fetchone()
            if row is not None:
                placed[i] = Posted(MessageKey(row[1], row[2]), row[0])
                continue
        fresh.append(i)
    if fresh:
        txn.touch(qid)
        first = txn.take(len(fresh))
        for n, i in enumerate(fresh):
            placed[i] = Posted(MessageKey(first + n, tail), messages[i].partition)
        expires = now + window * 1000
        rows = [(messages[i], placed[i].key.ts) for i in fresh]
        conn.executemany(
            _INSERT,
            [
                (qid, m.partition, ts, tail, now + m.ttl * 1000, m.content_type, m.body)
                for m, ts in rows
            ],
        )
        conn.executemany(
            _RECORD_KEY,
            [
                (qid, m.idempotency_key, m.partition, ts, tail, expires)
                for m, ts in rows
                if m.idempotency_key is not None
            ],
        )
    return [
        placed[i if m.idempotency_key is None else first_of[m.idempotency_key]]
        for i, m in enumerate(messages)
    ]


def put(
    conn: sqlite3.Connection,
    txn: Txn,
    queue: Queue,
    keys: Sequence[tuple[int, MessageKey]],
    body: str,
    content_type: str,
    ttl: int,
) -> None:
    """Check the queue, then create or overwrite each ``(partition, key)``."""
    check_current(conn, queue)
    qid = int(queue.handle)
    expires = txn.now_ms + ttl * 1000
    txn.touch(qid)
    conn.executemany(
        "INSERT OR REPLACE INTO messages (qid, partition, ts, tail, expires,"
        " content_type, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(qid, p, k.ts, k.tail, expires, content_type, body) for p, k in keys],
    )


def delete(conn: sqlite3.Connection, qid: int, keys: Sequence[tuple[int, MessageKey]]) -> None:
    conn.executemany(_DELETE, [(qid, p, k.ts, k.tail) for p, k in keys])


class RangeScan:
    """One partition's messages from ``since`` in key order, as one prepared query."""

    __slots__ = ("_args", "_limit", "_partition", "_sql")

    def __init__(
        self,
        qid: int,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
    ) -> None:
        order = "DESC" if descending else "ASC"
        bound: tuple[int | bytes, ...] = ()
        where = ""
        if since is not None:
            # Spelled out rather than as a row value so the primary key drives the seek.
            # Descending scans start at ``since`` and go back: key <= since. A pure
            # time bound (empty tail) includes every message of its tick either way.
            if descending:
                where = " AND ts <= ? AND (ts < ? OR tail <= ?)"
                bound = (since.ts, since.ts, since.tail or _MAX_TAIL)
            else:
                where = " AND ts >= ? AND (ts > ? OR tail >= ?)"
                bound = (since.ts, since.ts, since.tail)
        self._sql = (
            f"{_SELECT} WHERE qid = ? AND partition = ?{where} AND expires > ?"
            f" ORDER BY ts {order}, tail {order} LIMIT ?"
        )
        self._args = (qid, partition, *bound)
        self._partition = partition
        self._limit = limit

    def __call__(self, conn: sqlite3.Connection) -> list[Message]:
        partition = self._partition
        rows = conn.execute(self._sql, (*self._args, now_ms(), self._limit)).fetchall()
        return [Message(MessageKey(ts, tail), partition, body, ct) for ts, tail, body, ct in rows]


def fetch(
    conn: sqlite3.Connection, qid: int, keys: Sequence[tuple[int, MessageKey]]
) -> list[Message]:
    """The unexpired messages among ``keys``, in the order asked."""
    now = now_ms()
    found = []
    for partition, key in keys:
        row = conn.execute(
            f"{_SELECT} WHERE qid = ? AND partition = ? AND ts = ? AND tail = ? AND expires > ?",
            (qid, partition, key.ts, key.tail, now),
        ).fetchone()
        if row is not None:
            found.append(Message(key, partition, row[2], row[3]))
    return found


def count(conn: sqlite3.Connection, qid: int) -> int:
    """Unexpired messages of queue ``qid`` in all partitions."""
    row = conn.execute(
        "SELECT count(*) FROM messages WHERE qid = ? AND expires > ?", (qid, now_ms())
    ).fetchone()
    return int(row[0])
