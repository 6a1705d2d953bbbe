"""Putting queues and messages in place before a measurement.

Many queues go straight into the SQLite file, with the backend's own schema
(``queuey.storage.sqlite.schema.migrate``), before the server starts: a
million queues through HTTP would take longer than the whole bench. A few
queues and their messages go through HTTP, as a client would put them.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from queuey.storage.keys import new_tail, now_ticks
from queuey.storage.sqlite.schema import migrate

#: Queue ``i`` of a filled store is named ``QUEUE_NAME % i``; the Lua scripts use the same format.
QUEUE_NAME = "q%07d"
#: Rows per transaction when filling.
CHUNK = 100_000
THREE_DAYS_MS = 3 * 86400 * 1000


def fill_queues(
    db: Path, app: str, count: int, consistency: str, messages_per_queue: int, size: int
) -> float:
    """Create ``count`` queues ``q0000000``... in a new SQLite file, each with a few messages.

    Rows go in as ``queuey serve`` would write them: consecutive queue ids,
    message keys stamped above one clock, the clock row moved past them.
    Returns the seconds it took.
    """
    began = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        conn.execute("PRAGMA synchronous = OFF")  # a crash here only loses the fill
        created = round(time.time(), 3)
        tail = new_tail()
        first_ts = now_ticks()
        expires = int(time.time() * 1000) + THREE_DAYS_MS
        body = "x" * size
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO queues (id, app, name, partitions, type, consistency, principles,"
                " created) VALUES (?, ?, ?, 1, 'user', ?, '', ?)",
                ((i + 1, app, QUEUE_NAME % i, consistency, created) for i in range(start, stop)),
            )
            conn.executemany(
                "INSERT INTO messages (qid, partition, ts, tail, expires, content_type, body)"
                " VALUES (?, 1, ?, ?, ?, 'text/plain', ?)",
                (
                    (i + 1, first_ts + i * messages_per_queue + m, tail, expires, body)
                    for i in range(start, stop)
                    for m in range(messages_per_queue)
                ),
            )
            conn.execute("COMMIT")
        last_ts = first_ts + count * messages_per_queue
        conn.execute("UPDATE clock SET last_ts = ? WHERE id = 0", (last_ts,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - began


def create_queue(url: str, app: str, key: str, name: str, consistency: str) -> None:
    """Create a queue through HTTP."""
    response = httpx.post(
        f"{url}/v1/{app}",
        json={"queue_name": name, "consistency": consistency},
        headers={"Authorization": f"Application {key}"},
        timeout=60,
    )
    response.raise_for_status()


def post_messages(url: str, app: str, key: str, queue: str, count: int, size: int) -> None:
    """Post ``count`` messages of ``size`` bytes through HTTP, in batches of 1,000."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Application {key}"}, timeout=60
    ) as client:
        for start in range(0, count, 1000):
            items = [{"body": "x" * size} for _ in range(min(1000, count - start))]
            client.post(f"/v1/{app}/{queue}", json={"messages": items}).raise_for_status()
