"""CassandraStorage: the storage contract on a Cassandra cluster, glued from this package's parts.

The connection and consistency levels are in ``session.py``, the schema in
``schema.py``, the CQL in ``statements.py``, queue metadata in ``queues.py``,
messages in ``messages.py``, idempotency keys in ``idempotency.py`` and
consumer groups (``storage.groups.GroupStorage``) in ``groups.py`` and its
parts. Keys are made here, on the web node, by one :class:`IdClock` per store:
strictly increasing per node, but not in commit order across nodes, so range
reads hide messages younger than the settle delay.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from urllib.parse import parse_qs, urlsplit

from cassandra import ConsistencyLevel

from queuey.storage.base import (
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueMark,
    QueueSettings,
    StoreUnavailable,
)
from queuey.storage.cassandra import trace
from queuey.storage.cassandra.groups import Groups
from queuey.storage.cassandra.idempotency import Freshness, Keys, Record, age, now_micros, stamp
from queuey.storage.cassandra.marks import Marks
from queuey.storage.cassandra.messages import Messages, Row, all_of
from queuey.storage.cassandra.queues import CHECK_SECONDS, Queues
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import MAX_TAIL, timeuuid
from queuey.storage.groups import (
    Action,
    Delivery,
    Group,
    GroupReport,
    GroupSettings,
    Position,
    Settled,
)
from queuey.storage.keys import IdClock, MessageKey, new_tail, now_ticks
from queuey.storage.window import Receipt

#: Defaults of the constructor's knobs (see :class:`CassandraStorage`).
SETTLE = {"weak": 1.0, "strong": 5.0, "very_strong": 600.0}
REQUEST_TIMEOUT = 10.0
BATCH_BYTES = 1024 * 1024
LOGGED_BATCH_BYTES = 40 * 1024
IDEMPOTENCY_WINDOW = 86400


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
    ``idempotency_window``
        Seconds a message's idempotency key is remembered, counted from its
        first post (default 86400; at most 20 years, Cassandra's longest TTL).
    ``queue_check_seconds``
        Seconds a queue row this process read may stand for the stored one in
        the check of a post without idempotency keys (default 2, as the
        server's ``queue_cache_seconds``; 0: every post reads it). Another web
        node's deletion or change of the queue may go unseen by posts that
        long (``queues.py``).
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
        idempotency_window: int = IDEMPOTENCY_WINDOW,
        queue_check_seconds: float = CHECK_SECONDS,
    ) -> None:
        if not keyspace.isidentifier():
            raise ValueError(f"keyspace {keyspace!r} must be letters, digits and _")
        self.keyspace = keyspace
        self.namespace = namespace
        self.settle_delays = {**SETTLE, **(settle or {})}
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
        self._queues = Queues(self._db, namespace, queue_check_seconds)
        self._messages = Messages(
            self._db, batch_bytes=batch_bytes, logged_batch_bytes=logged_batch_bytes
        )
        self._keys = Keys(self._db, self._messages, idempotency_window)
        self._marks = Marks(self._db, self._queues)
        self._groups = Groups(
            self._db,
            self._queues,
            self._messages,
            namespace=namespace,
            post=self.post_messages,
            settle=self.settle_seconds,
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
        cls,
        url: str,
        *,
        settle: dict[str, float] | None = None,
        create_schema: bool = True,
        idempotency_window: int | None = None,
    ) -> CassandraStorage:
        """``cassandra://HOST[,HOST...][:PORT]/KEYSPACE?replication=N[&dc=NAME[:N],...]``.

        ``namespace=NAME`` keeps this deployment's queues apart from those of
        others sharing the keyspace (each sees only its own applications).
        ``queue_check_seconds=S`` sets that knob (default 2). Raises
        ValueError for a URL that says none of this.
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
        check_text = query.get("queue_check_seconds", [str(CHECK_SECONDS)])[-1]
        try:
            check_seconds = float(check_text)
        except ValueError:
            check_seconds = -1.0
        if not 0 <= check_seconds < float("inf"):
            raise ValueError("queue_check_seconds must be a number of seconds, 0 or more")
        return cls(
            hosts,
            keyspace,
            port=port,
            replication=replication,
            datacenters=datacenters,
            settle=settle,
            create_schema=create_schema,
            namespace=query.get("namespace", [""])[-1],
            idempotency_window=(
                IDEMPOTENCY_WINDOW if idempotency_window is None else idempotency_window
            ),
            queue_check_seconds=check_seconds,
        )

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.run("ping", (), ConsistencyLevel.ONE)

    def settle_seconds(self, consistency: str) -> float:
        return self.settle_delays.get(consistency, 0.0)

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
        # The row first: from then on its groups are unreachable (they are keyed
        # by the incarnation's qid); then they are removed.
        await self._queues.delete(queue)
        await self._groups.delete_of_queue(queue)

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        return await self._queues.page(app, start, limit)

    async def count_messages(self, queue: Queue) -> int:
        level = self._levels.read[queue.settings.consistency]
        return await self._messages.count(uuid.UUID(queue.handle), queue.partitions, level)

    # -- messages ----------------------------------------------------------

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[Posted]:
        keyed = any(m.idempotency_key is not None for m in messages)
        await self._queues.check(queue, recent=not keyed)
        qid = uuid.UUID(queue.handle)
        level = self._levels.write[queue.settings.consistency]
        if not keyed:
            return await self._post_plain(qid, messages, level)
        read = self._levels.read[queue.settings.consistency]
        fresh = Freshness.of(self.settle_seconds(queue.settings.consistency))
        first_of: dict[str, int] = {}  # idempotency key -> index of its first item
        new = [  # the messages that get a key: unkeyed ones, the first of each idempotency key
            i
            for i, m in enumerate(messages)
            if m.idempotency_key is None or first_of.setdefault(m.idempotency_key, i) == i
        ]
        first = self._clock.take(len(new))
        rows: dict[int, Row] = {}
        for n, i in enumerate(new):
            m = messages[i]
            key = MessageKey(first + n, self._tail)
            # At its id's time: a completion (at that time less one) never overrides it.
            rows[i] = Row(m.partition, key, m.body, m.content_type, m.ttl, stamp(key) + 1)
        bound = dict(zip(new, self._messages.bind(qid, list(rows.values())), strict=True))
        # Every value is encoded; now the keys are recorded, before any message (idempotency.py).
        created = now_micros()
        earlier = await self._keys.record(
            qid, {ikey: rows[i] for ikey, i in first_of.items()}, created, level
        )
        taken = {ikey: record for ikey, record in earlier.items() if record is not None}
        mine = [i for i in new if messages[i].idempotency_key not in taken]
        if first_of and mine and age(rows[mine[0]].key) > fresh.write_by:
            # Written now, they could show behind readers already past their ids; the
            # keys' records stay, and the retry stores them under fresh ids.
            raise StoreUnavailable("recording the idempotency keys took too long; try again")

        def complete(ikey: str, record: Record) -> Awaitable[Record]:
            row = rows[first_of[ikey]]
            return self._keys.complete(qid, ikey, record, row, (read, level), fresh, self._new_key)

        answers: dict[str, Record] = {}
        _, *completed = await all_of(
            [
                self._messages.send(qid, [bound[i] for i in mine], level),
                *(complete(ikey, record) for ikey, record in taken.items()),
            ]
        )
        answers.update(zip(taken, completed, strict=True))
        own = {ikey: first_of[ikey] for ikey in earlier.keys() - taken.keys()}
        records = {
            ikey: Record(rows[i].key, rows[i].partition, created, False) for ikey, i in own.items()
        }
        marked = await all_of(
            [self._keys.mark(qid, ikey, record, level, fresh) for ikey, record in records.items()]
        )
        for (ikey, record), kept in zip(records.items(), marked, strict=True):
            # Not kept: the write returned so late that a retry gave the key a new id.
            answers[ikey] = (
                record if kept else await complete(ikey, await self._keys.current(qid, ikey))
            )
        if trace.enabled():
            ages = [round(age(rows[i].key), 3) for i in mine]
            trace.trace("post", ids=[str(timeuuid(rows[i].key)) for i in mine], ages=ages)
        placed = {i: Posted(rows[i].key, rows[i].partition) for i in mine}
        for ikey, record in answers.items():
            placed[first_of[ikey]] = Posted(record.key, record.partition)
        return [
            placed[i if m.idempotency_key is None else first_of[m.idempotency_key]]
            for i, m in enumerate(messages)
        ]

    async def _post_plain(
        self, qid: uuid.UUID, messages: Sequence[NewMessage], level: int
    ) -> list[Posted]:
        """Messages without idempotency keys: written, nothing recorded (as ``post_messages``)."""
        first = self._clock.take(len(messages))
        rows = []
        for n, m in enumerate(messages):
            key = MessageKey(first + n, self._tail)
            # At its id's time, as a post with keys writes it.
            rows.append(Row(m.partition, key, m.body, m.content_type, m.ttl, stamp(key) + 1))
        await self._messages.write(qid, rows, level)
        if trace.enabled():
            ages = [round(age(row.key), 3) for row in rows]
            trace.trace("post", ids=[str(timeuuid(row.key)) for row in rows], ages=ages)
        return [Posted(row.key, row.partition) for row in rows]

    def _new_key(self) -> MessageKey:
        """A fresh id of this web node."""
        return MessageKey(self._clock.take(1), self._tail)

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
            uuid.UUID(queue.handle), partition, since, limit, descending, newest, level, settle
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
        # Readers waiting on other web nodes hear of it by this mark: an overwrite's ids
        # may lie in any hour, where their look at the newest ids does not reach.
        changed = MessageKey(self._clock.take(1), self._tail)
        await self._marks.overwritten(queue, changed, [k for _, k in keys], level)

    async def marks(self, queues: Sequence[Queue]) -> list[QueueMark]:
        return await self._marks.marks(queues, self._levels.read)

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        level = self._levels.write[queue.settings.consistency]
        await self._messages.delete(uuid.UUID(queue.handle), keys, level)

    # -- consumer groups (storage.groups.GroupStorage, groups.py) -----------------

    async def receipt_secret(self) -> bytes:
        return await self._groups.secret()

    async def create_group(
        self, queue: Queue, name: str, settings: GroupSettings, start: Position
    ) -> tuple[Group, bool]:
        return await self._groups.create(queue, name, settings, start)

    async def get_group(self, queue: Queue, name: str) -> Group | None:
        return await self._groups.get(queue, name)

    async def list_groups(self, queue: Queue) -> list[Group]:
        return await self._groups.page(queue)

    async def update_group(self, group: Group, settings: GroupSettings) -> Group:
        return await self._groups.update(group, settings)

    async def delete_group(self, group: Group) -> None:
        await self._groups.delete(group)

    async def claim(
        self,
        group: Group,
        partitions: Sequence[int],
        limit: int,
        consumer: str | None,
        max_in_flight: int,
    ) -> list[Delivery]:
        return await self._groups.claim(group, partitions, limit, consumer, max_in_flight)

    async def settle(
        self,
        group: Group,
        action: Action,
        receipts: Sequence[Receipt],
        seconds: int,
        publish: Sequence[tuple[Queue, NewMessage]] = (),
    ) -> Settled:
        return await self._groups.settle(group, action, receipts, seconds, publish)

    async def seek(self, group: Group, partitions: Sequence[int], to: Position) -> None:
        await self._groups.seek(group, partitions, to)

    async def report(self, group: Group) -> GroupReport:
        return await self._groups.report(group)
