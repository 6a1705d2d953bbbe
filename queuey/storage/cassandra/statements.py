"""Every CQL statement the backend runs, prepared once per connection by name.

Tables are named with their keyspace: ``USE`` with prepared statements is ambiguous.
"""

from __future__ import annotations

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

#: Index rows outlive any message (TTL is at most 2**25 s) by an hour.
INDEX_TTL = 2**25 + 3600

STATEMENTS = {
    "ping": "SELECT release_version FROM system.local",
    "add_bucket": "INSERT INTO {ks}.queue_buckets (app, bucket) VALUES (?, ?)",
    "buckets": "SELECT bucket FROM {ks}.queue_buckets WHERE app = ? AND bucket >= ?",
    "create_queue": (
        "INSERT INTO {ks}.queues (app, bucket, name, qid, partitions, type, consistency,"
        " principles, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    ),
    # Principles as JSON text: the driver makes a new class for a list column's type in
    # every answer that has one (the answer's metadata is read each time), ~20 µs.
    "get_queue": (
        "SELECT name, qid, partitions, type, consistency, toJson(principles) AS principles,"
        " created FROM {ks}.queues WHERE app = ? AND bucket = ? AND name = ?"
    ),
    "update_queue": (
        "UPDATE {ks}.queues SET partitions = ?, type = ?, consistency = ?, principles = ?"
        " WHERE app = ? AND bucket = ? AND name = ? IF qid = ? AND partitions = ?"
    ),
    "delete_queue": (
        "DELETE FROM {ks}.queues WHERE app = ? AND bucket = ? AND name = ? IF qid = ?"
    ),
    "list_queues": (
        "SELECT name, qid, partitions, type, consistency, toJson(principles) AS principles,"
        " created FROM {ks}.queues WHERE app = ? AND bucket = ? AND name >= ? LIMIT ?"
    ),
    "add_hour": (
        "INSERT INTO {ks}.message_hours (qid, partition, hour) VALUES (?, ?, ?)"
        f" USING TTL {INDEX_TTL}"
    ),
    "hours_from": (
        "SELECT hour FROM {ks}.message_hours WHERE qid = ? AND partition = ? AND hour >= ?"
    ),
    "count": "SELECT count(*) FROM {ks}.messages WHERE qid = ? AND partition = ? AND hour = ?",
    "insert": (
        "INSERT INTO {ks}.messages (qid, partition, hour, id, body, content_type)"
        " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "insert_at": (
        "INSERT INTO {ks}.messages (qid, partition, hour, id, body, content_type)"
        " VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
    ),
    # Idempotency keys (idempotency.py): the first answer, compare-and-set; the
    # stored flag is set once the message is stored.
    "record_key": (
        "INSERT INTO {ks}.idempotency_keys (qid, ikey, id, partition, created)"
        " VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
    ),
    "key_stored": (
        "UPDATE {ks}.idempotency_keys USING TTL ? SET stored = true WHERE qid = ? AND ikey = ?"
    ),
    # A key whose message was never stored may get a new id (a fresh one: its own is too
    # old to be written); a late write marks its key stored only if it still names its id.
    "key_stored_if": (
        "UPDATE {ks}.idempotency_keys USING TTL ? SET stored = true WHERE qid = ? AND ikey = ?"
        " IF id = ?"
    ),
    "rekey": (
        "UPDATE {ks}.idempotency_keys USING TTL ? SET id = ? WHERE qid = ? AND ikey = ?"
        " IF id = ? AND stored = null"
    ),
    "get_key": (
        "SELECT id, partition, created, stored FROM {ks}.idempotency_keys"
        " WHERE qid = ? AND ikey = ?"
    ),
    # Ids as their 16 bytes: a driver's UUID costs more than the rest of a row.
    "range_asc": (
        "SELECT timeuuidAsBlob(id) AS id, body, content_type FROM {ks}.messages"
        " WHERE qid = ? AND partition = ? AND hour = ? AND id >= ? AND id <= ?"
        " ORDER BY id ASC LIMIT ?"
    ),
    "range_desc": (
        "SELECT timeuuidAsBlob(id) AS id, body, content_type FROM {ks}.messages"
        " WHERE qid = ? AND partition = ? AND hour = ? AND id >= ? AND id <= ?"
        " ORDER BY id DESC LIMIT ?"
    ),
    "get": (
        "SELECT body, content_type FROM {ks}.messages"
        " WHERE qid = ? AND partition = ? AND hour = ? AND id = ?"
    ),
    "delete": "DELETE FROM {ks}.messages WHERE qid = ? AND partition = ? AND hour = ? AND id = ?",
    "count_from": (
        "SELECT count(*) FROM {ks}.messages WHERE qid = ? AND partition = ? AND hour = ?"
        " AND id >= ?"
    ),
    "exists": (
        "SELECT id FROM {ks}.messages WHERE qid = ? AND partition = ? AND hour = ? AND id = ?"
    ),
    # Consumer groups (groups.py): group rows and their windows change only by
    # compare-and-set; the shared receipt secret is created once.
    "create_group": (
        "INSERT INTO {ks}.groups (qid, name, gid, guarantee, lease_seconds, max_deliveries,"
        " dead_letter_queue, ordered, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    ),
    "get_group": (
        "SELECT name, gid, guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered,"
        " created FROM {ks}.groups WHERE qid = ? AND name = ?"
    ),
    "list_groups": (
        "SELECT name, gid, guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered,"
        " created FROM {ks}.groups WHERE qid = ?"
    ),
    "update_group": (
        "UPDATE {ks}.groups SET guarantee = ?, lease_seconds = ?, max_deliveries = ?,"
        " dead_letter_queue = ?, ordered = ? WHERE qid = ? AND name = ? IF gid = ?"
    ),
    "delete_group": "DELETE FROM {ks}.groups WHERE qid = ? AND name = ? IF gid = ?",
    "delete_groups": "DELETE FROM {ks}.groups WHERE qid = ?",
    "window": (
        "SELECT version, window, writer FROM {ks}.group_windows WHERE gid = ? AND partition = ?"
    ),
    "insert_window": (
        "INSERT INTO {ks}.group_windows (gid, partition, version, window, writer)"
        " VALUES (?, ?, 1, ?, ?) IF NOT EXISTS"
    ),
    "update_window": (
        "UPDATE {ks}.group_windows SET version = ?, window = ?, writer = ?"
        " WHERE gid = ? AND partition = ? IF version = ?"
    ),
    "delete_window": "DELETE FROM {ks}.group_windows WHERE gid = ? AND partition = ?",
    # Change marks for waiting readers (marks.py): a partition's newest message in
    # one hour, and the mark overwrites by id leave.
    "newest_in_hour": (
        "SELECT id FROM {ks}.messages WHERE qid = ? AND partition = ? AND hour = ?"
        " AND id <= ? ORDER BY id DESC LIMIT 1"
    ),
    "get_mark": "SELECT changed, newest FROM {ks}.queue_marks WHERE qid = ?",
    "set_mark": "UPDATE {ks}.queue_marks USING TTL ? SET changed = ?, newest = ? WHERE qid = ?",
    "secret": "SELECT value FROM {ks}.secrets WHERE name = ?",
    "create_secret": "INSERT INTO {ks}.secrets (name, value) VALUES (?, ?) IF NOT EXISTS",
}


def prepare(session: Session, keyspace: str) -> dict[str, PreparedStatement]:
    """Every statement prepared on ``session`` (blocking; driver errors raise)."""
    return {name: session.prepare(cql.format(ks=keyspace)) for name, cql in STATEMENTS.items()}
