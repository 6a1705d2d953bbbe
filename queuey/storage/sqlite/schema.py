"""The SQLite schema: tables as numbered migrations, applied at start.

Add a migration by appending to ``MIGRATIONS``; never edit a released one.
Several processes may start at once: migrations run under ``BEGIN IMMEDIATE``
so exactly one of them applies each step.

Tables: ``queues`` (one row per queue incarnation; its ``id`` is the queue's
storage handle), ``messages`` (keyed by queue id, partition and message key;
``WITHOUT ROWID``; an index on ``expires`` for the purge), ``clock`` (the
largest key timestamp ever committed, see ``clock.py``), ``dead_queues``
(deleted queues whose messages the purge still has to reclaim) and
``idempotency_keys`` (the answer given to a message's idempotency key, per
queue id, until it expires; see ``messages.py``), ``queue_marks`` (per queue
id, the key clock's value at the last commit that wrote a message to it; see
``marks.py``).
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: queues, messages, the shared key clock, queues awaiting reclamation.
    """
    CREATE TABLE clock (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        last_ts INTEGER NOT NULL
    );
    INSERT INTO clock (id, last_ts) VALUES (0, 0);
    -- AUTOINCREMENT: a queue created again under a deleted one's name never
    -- reuses its id, so messages still awaiting reclamation stay invisible.
    CREATE TABLE queues (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        partitions INTEGER NOT NULL,
        type TEXT NOT NULL,
        consistency TEXT NOT NULL,
        principles TEXT NOT NULL,
        created REAL NOT NULL,
        UNIQUE (app, name)
    );
    CREATE TABLE messages (
        qid INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        tail BLOB NOT NULL,
        expires INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (qid, partition, ts, tail)
    ) WITHOUT ROWID;
    CREATE INDEX messages_expires ON messages (expires);
    CREATE TABLE dead_queues (qid INTEGER PRIMARY KEY);
    """,
    # 2: idempotency keys: the first answer (key, partition) per queue id and key.
    """
    CREATE TABLE idempotency_keys (
        qid INTEGER NOT NULL,
        key TEXT NOT NULL,
        partition INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        tail BLOB NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (qid, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires);
    """,
    # 3: consumer groups (one row each) and their windows (one per group and partition);
    # the store's secret for signing receipts.
    """
    CREATE TABLE groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        qid INTEGER NOT NULL,
        name TEXT NOT NULL,
        guarantee TEXT NOT NULL,
        lease_seconds INTEGER NOT NULL,
        max_deliveries INTEGER NOT NULL,
        dead_letter_queue TEXT,
        ordered INTEGER NOT NULL,
        created REAL NOT NULL,
        UNIQUE (qid, name)
    );
    CREATE TABLE group_windows (
        gid INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        window BLOB NOT NULL,
        PRIMARY KEY (gid, partition)
    ) WITHOUT ROWID;
    CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    INSERT INTO secrets (name, value) VALUES ('receipts', randomblob(32));
    """,
    # 4: change marks of queues, for readers waiting for messages (marks.py).
    """
    CREATE TABLE queue_marks (qid INTEGER PRIMARY KEY, ts INTEGER NOT NULL);
    """,
    # 5: group windows gain a nonce (which version the writer's cache holds) and where a
    # PUT by id stored a message that may lie behind the window's frontier (groups.py).
    # The small columns come before the window: reading them does not read its pages.
    """
    CREATE TABLE group_windows_5 (
        gid INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        nonce INTEGER NOT NULL DEFAULT 0,
        rescan_ts INTEGER,
        rescan_tail BLOB,
        window BLOB NOT NULL,
        PRIMARY KEY (gid, partition)
    ) WITHOUT ROWID;
    INSERT INTO group_windows_5 (gid, partition, window)
        SELECT gid, partition, window FROM group_windows;
    DROP TABLE group_windows;
    ALTER TABLE group_windows_5 RENAME TO group_windows;
    """,
)


def schema_version(conn: sqlite3.Connection) -> int:
    """The last migration applied to the file (0 for a new file)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to the latest schema; return the version it is at."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        if version > len(MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this Queuey knows ({len(MIGRATIONS)})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
