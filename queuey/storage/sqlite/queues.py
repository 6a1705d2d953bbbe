"""Queue rows: create, look up, update, delete, list, and the check every write makes first.

A queue's handle is its row id. ``AUTOINCREMENT`` means a queue created again
under a deleted one's name never reuses the id, so messages of the old
incarnation, still awaiting reclamation, never show in the new one.
Functions that write run inside the writer's transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from queuey.storage.base import Queue, QueueChanged, QueueNotFound, QueueSettings
from queuey.storage.sqlite import marks

_COLUMNS = "id, app, name, partitions, type, consistency, principles, created"


def _from_row(row: Sequence[Any]) -> Queue:
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


def create(
    conn: sqlite3.Connection, app: str, name: str, settings: QueueSettings
) -> tuple[Queue, bool]:
    """Insert the queue unless the name is taken; the stored queue, and whether it is new."""
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
        f"SELECT {_COLUMNS} FROM queues WHERE app = ? AND name = ?", (app, name)
    ).fetchone()
    return _from_row(row), cur.rowcount == 1


def get(conn: sqlite3.Connection, app: str, name: str) -> Queue | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM queues WHERE app = ? AND name = ?", (app, name)
    ).fetchone()
    return None if row is None else _from_row(row)


def update(conn: sqlite3.Connection, qid: int, settings: QueueSettings) -> Queue:
    """Replace the settings of queue ``qid``; raise QueueNotFound if it is gone."""
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
    row = conn.execute(f"SELECT {_COLUMNS} FROM queues WHERE id = ?", (qid,)).fetchone()
    if row is None:
        raise QueueNotFound()
    return _from_row(row)


def delete(conn: sqlite3.Connection, qid: int) -> None:
    """Remove the row now (every later lookup misses); the purge reclaims the messages."""
    if conn.execute("DELETE FROM queues WHERE id = ?", (qid,)).rowcount:
        conn.execute("INSERT OR IGNORE INTO dead_queues (qid) VALUES (?)", (qid,))
        marks.forget(conn, qid)


def page(conn: sqlite3.Connection, app: str, start: str | None, limit: int) -> list[Queue]:
    """Up to ``limit`` queues of ``app`` named ``start`` or after, in binary name order."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?",
        (app, start or "", limit),
    ).fetchall()
    return [_from_row(row) for row in rows]


def check_current(conn: sqlite3.Connection, queue: Queue) -> None:
    """Refuse, before writing, a write to a deleted queue or one made with stale settings.

    Raises QueueNotFound or QueueChanged (writer refusals: nothing was written).
    """
    row = conn.execute(
        "SELECT partitions, consistency FROM queues WHERE id = ?", (int(queue.handle),)
    ).fetchone()
    if row is None:
        raise QueueNotFound()
    if tuple(row) != (queue.partitions, queue.settings.consistency):
        raise QueueChanged()
