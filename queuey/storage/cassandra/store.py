"""CassandraStorage: the storage contract on a Cassandra cluster, glued from this package's parts.

The connection and consistency levels are in ``session.py``, the schema in
``schema.py``, the CQL in ``statements.py``, queue metadata in ``queues.py``
and messages in ``messages.py``. Keys are made here, on the web node, by one
:class:`IdClock` per store: strictly increasing per node, but not in commit
order across nodes, so range reads hide messages younger than the settle delay.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from cassandra import ConsistencyLevel

from queuey.storage.base import Message, NewMessage, Queue, QueueSettings
from queuey.storage.cassandra.messages import Messages, Row
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import MAX_TAIL
from queuey.storage.keys import IdClock, MessageKey, new_tail, now_ticks

#: Defaults of the constructor's knobs (see :class:`CassandraStorage`).
SETTLE = {"weak": 1.0, "strong": 5.0, "very_strong": 600.0}
REQUEST_TIMEOUT = 10.0
BATCH_BYTES = 1024 * 1024
LOGGED_BATCH_BYTES = 40 * 1024


class CassandraStorage:
    """A :class:`queuey.storage.base.Storage` on an Apache Cassandra cluster.

    ``hosts``, ``port``, ``keyspace``: where. ``replication`` (SimpleStrategy)
    or ``datacenters`` (name → replicas, NetworkTopologyStrategy; the first is
    the local one) shape a keyspace this store creates. The knobs:

    ``settle``
        Seconds a range read hides new messages, by queue consistency
        (default weak 1, strong 5, very_strong 600): ids from different web
        nodes are not in commit order.
    ``create_schema``
        Create the keyspace and tables at start (default yes).
    ``request_timeout``
        Seconds the driver waits for one statement (default 10).
    ``namespace``
        Keeps this deployment's applications apart from others in the keyspace.
    ``batch_bytes``
        Largest batch of one Cassandra partition's writes (default 1 MiB),
        below the cluster's largest mutation and CQL message (8 MiB at least).
    ``logged_batch_bytes``
        Largest write over several partitions sent as one LOGGED batch, all or
        nothing (default 40 KiB, below the cluster's
        ``batch_size_fail_threshold``, 50 KiB by default).
    """

    def __init__(
        self,
        hosts: Sequence[str],
        keyspace: str,
        *,
        port: int = 9042,
        replication: int = 1,
        datacenters: dict[str, int] | None = None,
        settle: dict[str, float] | None = None,
        create_schema: bool = True,
        request_timeout: float = REQUEST_TIMEOUT,
        namespace: str = "",
        batch_bytes: int = BATCH_BYTES,
        logged_batch_bytes: int = LOGGED_BATCH_BYTES,
    ) -> None:
        if not keyspace.isidentifier():
            raise ValueError(f"keyspace {keyspace!r} must be letters, digits and _")
        self.keyspace = keyspace
        self.namespace = namespace
        self.settle = {**SETTLE, **(settle or {})}
        self._db = Connection(
            hosts,
            keyspace,
            port=port,
            replication=replication,
            datacenters=datacenters or {},
            create_schema=create_schema,
            request_timeout=request_timeout,
        )
        self._levels = self._db.levels
        self._queues = Queues(self._db, namespace)
        self._messages = Messages(
            self._db, batch_bytes=batch_bytes, logged_batch_bytes=logged_batch_bytes
        )
        self._clock = IdClock()
        self._tail = new_tail()

    @property
    def hosts(self) -> list[str]:
        return self._db.hosts

    @property
    def port(self) -> int:
        return self._db.port

    @classmethod
    def from_url(
        cls, url: str, *, settle: dict[str, float] | None = None, create_schema: bool = True
    ) -> CassandraStorage:
        """``cassandra://HOST[,HOST...][:PORT]/KEYSPACE?replication=N[&dc=NAME[:N],...]``.

        ``namespace=NAME`` keeps this deployment's queues apart from those of
        others sharing the keyspace (each sees only its own applications).
        Raises ValueError for a URL that says none of this.
        """
        parts = urlsplit(url)
        netloc = parts.netloc
        port = 9042
        hosts_text, _, port_text = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
        if port_text:
            if not port_text.isdigit():
                raise ValueError(f"port {port_text!r} is not a number")
            port = int(port_text)
        hosts = [h for h in hosts_text.split(",") if h]
        keyspace = parts.path.strip("/")
        if not hosts or not keyspace:
            raise ValueError("a Cassandra URL is cassandra://HOST[,HOST...][:PORT]/KEYSPACE")
        query = parse_qs(parts.query)
        replication_text = query.get("replication", ["1"])[-1]
        if not replication_text.isdigit() or int(replication_text) < 1:
            raise ValueError("replication must be a positive number")
        replication = int(replication_text)
        datacenters: dict[str, int] = {}
        for item in ",".join(query.get("dc", [])).split(","):
            if item:
                name, _, count = item.partition(":")
                datacenters[name] = int(count) if count.isdigit() else replication
        return cls(
            hosts,
            keyspace,
            port=port,
            replication=replication,
            datacenters=datacenters,
            settle=settle,
            create_schema=create_schema,
            namespace=query.get("namespace", [""])[-1],
        )

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.run("ping", (), ConsistencyLevel.ONE)

    def settle_seconds(self, consistency: str) -> float:
        return self.settle.get(consistency, 0.0)

    # -- queues ------------------------------------------------------------

    async def create_queue(
        self, app: str, name: str, settings: QueueSettings
    ) -> tuple[Queue, bool]:
        return await self._queues.create(app, name, settings)

    async def get_queue(self, app: str, name: str) -> Queue | None:
        return await self._queues.get(app, name)

    async def update_queue(self, queue: Queue, settings: QueueSettings) -> Queue:
        return await self._queues.update(queue, settings)

    async def delete_queue(self, queue: Queue) -> None:
        await self._queues.delete(queue)

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        return await self._queues.page(app, start, limit)

    async def count_messages(self, queue: Queue) -> int:
        level = self._levels.read[queue.settings.consistency]
        return await self._messages.count(uuid.UUID(queue.handle), queue.partitions, level)

    # -- messages ----------------------------------------------------------

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[MessageKey]:
        await self._queues.check(queue)
        first = self._clock.take(len(messages))
        keys = [MessageKey(first + i, self._tail) for i in range(len(messages))]
        rows = [
            Row(m.partition, k, m.body, m.content_type, m.ttl)
            for m, k in zip(messages, keys, strict=True)
        ]
        level = self._levels.write[queue.settings.consistency]
        await self._messages.write(uuid.UUID(queue.handle), rows, level)
        return keys

    async def read_range(
        self,
        queue: Queue,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
    ) -> list[Message]:
        settle = int(self.settle_seconds(queue.settings.consistency) * 10_000_000)
        newest = MessageKey(now_ticks() - settle, MAX_TAIL)
        level = self._levels.read[queue.settings.consistency]
        return await self._messages.read_range(
            uuid.UUID(queue.handle), partition, since, limit, descending, newest, level
        )

    async def get_messages(
        self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]
    ) -> list[Message]:
        level = self._levels.read[queue.settings.consistency]
        return await self._messages.get(uuid.UUID(queue.handle), keys, level)

    async def put_messages(
        self,
        queue: Queue,
        keys: Sequence[tuple[int, MessageKey]],
        body: str,
        content_type: str,
        ttl: int,
    ) -> None:
        await self._queues.check(queue)
        rows = [Row(p, k, body, content_type, ttl) for p, k in keys]
        level = self._levels.write[queue.settings.consistency]
        await self._messages.write(uuid.UUID(queue.handle), rows, level)

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        level = self._levels.write[queue.settings.consistency]
        await self._messages.delete(uuid.UUID(queue.handle), keys, level)
