"""The Apache Cassandra backend: many stateless web nodes, one cluster, several data centres.

The data model (keyspace from the URL, created at start unless disabled) is
described in ``schema.py``: queues bucketed by the first character of their
name, messages in ``(queue, partition, hour)`` partitions clustered by
TimeUUID with native TTL and TimeWindowCompactionStrategy.

Consistency per request from the queue (``session.py``): weak → ONE, strong →
QUORUM (LOCAL_QUORUM with several data centres), very_strong → EACH_QUORUM for
writes (QUORUM on a single-DC keyspace) and QUORUM for reads. Ids are made on
the web node, so ids from different nodes are not in commit order: range reads
hide messages younger than the queue's settle delay. How much of a write is
all or nothing is said in ``messages.py``.

Modules: ``session.py`` (the driver session, consistency levels, errors as
StoreUnavailable), ``reactor.py`` (the driver's connections on the store's
event loop), ``schema.py``, ``statements.py`` (the CQL),
``timeuuids.py`` (keys as TimeUUIDs, hour buckets), ``queues.py`` (queue
metadata), ``messages.py``, ``idempotency.py``, ``groups.py`` (consumer
groups, which lists the modules of its parts), ``store.py``
(:class:`CassandraStorage`).
Only this package imports the driver, an optional extra.
"""

from queuey.storage.cassandra.store import CassandraStorage

__all__ = ["CassandraStorage"]
