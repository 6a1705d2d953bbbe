"""The Cassandra schema: the keyspace and its tables, created at start unless disabled.

``queues``
    One row per queue, partitioned by ``(app, bucket)`` where ``bucket`` is the
    first character of the name. Names sort in binary order inside a bucket
    and buckets sort by that character, so walking the buckets in order pages
    through an application's queues in binary name order; an application with
    millions of queues spreads them over up to 65 partitions instead of one.
``queue_buckets``
    The buckets an application has queues in, so listing skips empty ones.
``messages``
    Partition ``(qid, partition, hour)``: one queue incarnation's partition
    for one hour, clustered by the message's TimeUUID; native TTL,
    TimeWindowCompactionStrategy (whole SSTables expire together).
``message_hours``
    The hours a queue partition has messages in, so range reads and counts
    visit only those.
``idempotency_keys``
    Partition ``(qid, ikey)``: the answer given to an idempotency key of one
    queue incarnation (message id, partition, when first posted in µs)
    and whether the message is known to be stored; written with a TTL of the
    idempotency window (``idempotency.py``).
``groups``
    Partition ``(qid)``: the consumer groups of one queue incarnation,
    clustered by name (binary order); ``gid`` names the group's incarnation
    (``groups.py``). A queue created again has a new ``qid``, so it sees none
    of the old groups.
``group_windows``
    Partition ``(gid, partition)``: one group's delivery window in one queue
    partition (``storage/window.py``, msgpack), changed only by
    compare-and-set on ``version``; ``writer`` names the write that set it, so
    a write whose outcome was unknown can be recognised.
``queue_marks``
    Partition ``(qid)``: the last overwrite by id of a queue incarnation (a
    fresh TimeUUID, and the newest key it wrote), so that readers waiting on
    other web nodes hear of it (``marks.py``); posts need no mark.
``secrets``
    Shared secrets by name (the receipt-signing key of each namespace),
    created once with ``IF NOT EXISTS``.
"""

from __future__ import annotations

from cassandra import DriverException
from cassandra.cluster import Session

TABLES = (
    """CREATE TABLE IF NOT EXISTS {ks}.queues (
        app text, bucket text, name text, qid uuid, partitions int, type text,
        consistency text, principles list<text>, created double,
        PRIMARY KEY ((app, bucket), name))""",
    """CREATE TABLE IF NOT EXISTS {ks}.queue_buckets (
        app text, bucket text, PRIMARY KEY ((app), bucket))""",
    """CREATE TABLE IF NOT EXISTS {ks}.messages (
        qid uuid, partition int, hour int, id timeuuid, body text, content_type text,
        PRIMARY KEY ((qid, partition, hour), id))
        WITH CLUSTERING ORDER BY (id ASC)
        AND default_time_to_live = 259200
        AND compaction = {{'class': 'TimeWindowCompactionStrategy',
            'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}}""",
    """CREATE TABLE IF NOT EXISTS {ks}.message_hours (
        qid uuid, partition int, hour int, PRIMARY KEY ((qid, partition), hour))""",
    """CREATE TABLE IF NOT EXISTS {ks}.idempotency_keys (
        qid uuid, ikey text, id timeuuid, partition int, created bigint, stored boolean,
        PRIMARY KEY ((qid, ikey)))""",
    """CREATE TABLE IF NOT EXISTS {ks}.groups (
        qid uuid, name text, gid uuid, guarantee text, lease_seconds int,
        max_deliveries int, dead_letter_queue text, ordered boolean, created double,
        PRIMARY KEY ((qid), name))""",
    """CREATE TABLE IF NOT EXISTS {ks}.group_windows (
        gid uuid, partition int, version bigint, window blob, writer uuid,
        PRIMARY KEY ((gid, partition)))""",
    """CREATE TABLE IF NOT EXISTS {ks}.queue_marks (
        qid uuid, changed timeuuid, newest timeuuid, PRIMARY KEY ((qid)))""",
    """CREATE TABLE IF NOT EXISTS {ks}.secrets (
        name text, value blob, PRIMARY KEY ((name)))""",
)


def replication_map(replication: int, datacenters: dict[str, int]) -> str:
    """The keyspace's replication: SimpleStrategy (one DC) or NetworkTopologyStrategy."""
    if datacenters:
        dcs = ", ".join(f"'{dc}': {n}" for dc, n in datacenters.items())
        return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"
    return f"{{'class': 'SimpleStrategy', 'replication_factor': {replication}}}"


def create(session: Session, keyspace: str, replication: int, datacenters: dict[str, int]) -> None:
    """Create the keyspace and tables that do not exist yet (blocking; driver errors raise)."""
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace}"
        f" WITH replication = {replication_map(replication, datacenters)}",
        timeout=60,
    )
    for statement in TABLES:
        session.execute(statement.format(ks=keyspace), timeout=60)
    # A table another process created a moment ago is "not created" here, so the
    # driver did not wait for the nodes to agree on it: wait now, or the next
    # PREPARE may land on a node that does not know the table yet.
    if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=60):
        raise DriverException("the Cassandra nodes do not agree on the schema after 60 s")
