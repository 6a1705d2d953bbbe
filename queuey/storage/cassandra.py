"""The Apache Cassandra backend: many stateless web nodes, one cluster, several data centres.

Data model (keyspace from the URL, created at start unless disabled):

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

Consistency per request from the queue: weak → ONE, strong → QUORUM
(LOCAL_QUORUM with several data centres), very_strong → EACH_QUORUM for writes
(QUORUM on a single-DC keyspace) and QUORUM for reads. Ids are made on the web
node, so ids from different nodes are not in commit order: range reads hide
messages younger than the queue's settle delay.

Cassandra orders TimeUUIDs by time, then by bytes 8-15 compared as *signed*
bytes; the contract's tie-break is unsigned. The two differ only for two
messages of one 100 ns tick made by different writers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cassandra import ConsistencyLevel, DriverException, RequestExecutionException
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement

from queuey.storage.base import (
    Message,
    NewMessage,
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    StorageUnavailable,
)
from queuey.storage.keys import UNIX_EPOCH_TICKS, IdClock, MessageKey, new_tail

HOUR_TICKS = 3600 * 10_000_000
#: Index rows outlive any message (TTL is at most 2**25 s) by an hour.
INDEX_TTL = 2**25 + 3600
#: Cassandra's smallest and largest TimeUUID tails (it compares bytes 8-15 signed).
MIN_TAIL = b"\x80" * 8
MAX_TAIL = b"\x7f" * 8
DRIVER_ERRORS = (DriverException, RequestExecutionException, NoHostAvailable, OSError)

SCHEMA = (
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
)


def _uuid(key: MessageKey) -> uuid.UUID:
    ts = key.ts
    head = (
        ((ts & 0xFFFFFFFF) << 32) | (((ts >> 32) & 0xFFFF) << 16) | ((ts >> 48) & 0x0FFF) | 0x1000
    )
    return uuid.UUID(int=(head << 64) | int.from_bytes(key.tail, "big"))


def _key(value: uuid.UUID) -> MessageKey:
    return MessageKey(value.time, value.bytes[8:])


def _hour(ts: int) -> int:
    return (ts - UNIX_EPOCH_TICKS) // HOUR_TICKS


def _bucket(name: str) -> str:
    return name[:1]


class CassandraStorage:
    """A :class:`queuey.storage.base.Storage` on an Apache Cassandra cluster."""

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
        request_timeout: float = 10.0,
        namespace: str = "",
    ) -> None:
        if not keyspace.isidentifier():
            raise ValueError(f"keyspace {keyspace!r} must be letters, digits and _")
        self.hosts = list(hosts)
        self.port = port
        self.keyspace = keyspace
        self.replication = replication
        self.datacenters = datacenters or {}
        self.settle = {"weak": 1.0, "strong": 5.0, "very_strong": 600.0, **(settle or {})}
        self.create_schema = create_schema
        self.namespace = namespace
        self.request_timeout = request_timeout
        self._clock = IdClock()
        self._tail = new_tail()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        self._known_hours: set[tuple[uuid.UUID, int, int]] = set()
        multi_dc = len(self.datacenters) > 1
        quorum = ConsistencyLevel.LOCAL_QUORUM if multi_dc else ConsistencyLevel.QUORUM
        self._write_levels = {
            "weak": ConsistencyLevel.ONE,
            "strong": quorum,
            "very_strong": ConsistencyLevel.EACH_QUORUM if multi_dc else ConsistencyLevel.QUORUM,
        }
        self._read_levels = {
            "weak": ConsistencyLevel.ONE,
            "strong": quorum,
            "very_strong": ConsistencyLevel.QUORUM,
        }
        self._meta_level = quorum

    @classmethod
    def from_url(
        cls, url: str, *, settle: dict[str, float] | None = None, create_schema: bool = True
    ) -> CassandraStorage:
        """``cassandra://HOST[,HOST...][:PORT]/KEYSPACE?replication=N[&dc=NAME[:N],...]``.

        ``namespace=NAME`` keeps this deployment's queues apart from those of
        others sharing the keyspace (each sees only its own applications).
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

    def _connect(self) -> Session:
        if self.datacenters:
            local_dc = next(iter(self.datacenters))
            balancing: Any = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc))
        else:
            balancing = TokenAwarePolicy(RoundRobinPolicy())
        profile = ExecutionProfile(
            load_balancing_policy=balancing,
            request_timeout=self.request_timeout,
            consistency_level=self._meta_level,
        )
        self._cluster = Cluster(
            self.hosts,
            port=self.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            protocol_version=5,
            connect_timeout=10,
            control_connection_timeout=10,
        )
        session = self._cluster.connect()
        if self.create_schema:
            if len(self.datacenters) > 0:
                dcs = ", ".join(f"'{dc}': {n}" for dc, n in self.datacenters.items())
                replication = f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"
            else:
                replication = (
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {self.replication}}}"
                )
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = {replication}",
                timeout=60,
            )
            for statement in SCHEMA:
                session.execute(statement.format(ks=self.keyspace), timeout=60)
        # Tables are named with their keyspace: `USE` with prepared statements is ambiguous.
        self._prepared = {
            name: session.prepare(cql.format(ks=self.keyspace)) for name, cql in _STATEMENTS.items()
        }
        return session

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._session = await loop.run_in_executor(None, self._connect)
        except DRIVER_ERRORS as exc:
            await self.close()
            raise StorageUnavailable(f"cannot reach Cassandra at {self.hosts}: {exc}") from exc

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.get_running_loop().run_in_executor(None, cluster.shutdown)

    async def ping(self) -> None:
        await self._run("ping", (), ConsistencyLevel.ONE)

    def settle_seconds(self, consistency: str) -> float:
        return self.settle.get(consistency, 0.0)

    # -- plumbing ----------------------------------------------------------

    def _require_session(self) -> Session:
        if self._session is None:
            raise StorageUnavailable("the store is closed")
        return self._session

    async def _run(self, name: str, args: Sequence[Any], level: int) -> list[Any]:
        """Execute a prepared statement at ``level``; driver trouble becomes StorageUnavailable."""
        session = self._require_session()
        statement = self._prepared[name].bind(args)
        statement.consistency_level = level
        try:
            future = session.execute_async(statement, timeout=self.request_timeout)
            rows: list[Any] = await _bridge(asyncio.get_running_loop(), future)
        except DRIVER_ERRORS as exc:
            raise StorageUnavailable(f"Cassandra: {type(exc).__name__}: {exc}") from exc
        return rows

    async def _meta(self, name: str, args: Sequence[Any]) -> list[Any]:
        """Queue metadata: at quorum, falling back to one replica when too few answer.

        Metadata changes rarely; serving it from one replica keeps ``weak``
        queues readable and writable while a quorum is down.
        """
        try:
            return await self._run(name, args, self._meta_level)
        except StorageUnavailable:
            return await self._run(name, args, ConsistencyLevel.ONE)

    # -- queues ------------------------------------------------------------

    def _app(self, app: str) -> str:
        """The application as stored: prefixed by the namespace, if any."""
        return f"{self.namespace}/{app}" if self.namespace else app

    @staticmethod
    def _queue(app: str, row: Any) -> Queue:
        return Queue(
            app=app,
            name=row.name,
            settings=QueueSettings(
                partitions=row.partitions,
                type=row.type,
                consistency=row.consistency,
                principles=tuple(row.principles or ()),
            ),
            created=row.created,
            handle=str(row.qid),
        )

    async def create_queue(
        self, app: str, name: str, settings: QueueSettings
    ) -> tuple[Queue, bool]:
        bucket = _bucket(name)
        stored = self._app(app)
        await self._run("add_bucket", (stored, bucket), self._meta_level)
        args = (
            stored,
            bucket,
            name,
            uuid.uuid4(),
            settings.partitions,
            settings.type,
            settings.consistency,
            list(settings.principles),
            round(time.time(), 3),
        )
        rows = await self._run("create_queue", args, self._meta_level)
        applied = bool(rows and rows[0][0])
        queue = await self.get_queue(app, name)
        if queue is None:  # deleted between the two statements
            raise StorageUnavailable("the queue changed while it was created; try again")
        return queue, applied

    async def get_queue(self, app: str, name: str) -> Queue | None:
        rows = await self._meta("get_queue", (self._app(app), _bucket(name), name))
        return self._queue(app, rows[0]) if rows else None

    async def update_queue(self, queue: Queue, settings: QueueSettings) -> Queue:
        current = await self.get_queue(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            raise QueueNotFound()
        args = (
            max(settings.partitions, current.partitions),
            settings.type,
            settings.consistency,
            list(settings.principles),
            self._app(queue.app),
            _bucket(queue.name),
            queue.name,
            uuid.UUID(queue.handle),
        )
        rows = await self._run("update_queue", args, self._meta_level)
        if not (rows and rows[0][0]):
            raise QueueNotFound()
        updated = await self.get_queue(queue.app, queue.name)
        if updated is None:
            raise QueueNotFound()
        return updated

    async def delete_queue(self, queue: Queue) -> None:
        # The row goes now; the messages of this incarnation (qid) expire by TTL.
        await self._run(
            "delete_queue",
            (self._app(queue.app), _bucket(queue.name), queue.name),
            self._meta_level,
        )

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        start = start or ""
        stored = self._app(app)
        buckets = [r.bucket for r in await self._meta("buckets", (stored, _bucket(start)))]
        found: list[Queue] = []
        for bucket in buckets:
            lower = start if bucket == _bucket(start) else ""
            rows = await self._meta("list_queues", (stored, bucket, lower, limit - len(found)))
            found.extend(self._queue(app, row) for row in rows)
            if len(found) >= limit:
                break
        return found

    async def count_messages(self, queue: Queue) -> int:
        qid = uuid.UUID(queue.handle)
        level = self._read_levels[queue.settings.consistency]
        total = 0
        for partition in range(1, queue.partitions + 1):
            hours = await self._run("hours_from", (qid, partition, 0), level)
            counts = await asyncio.gather(
                *(self._run("count", (qid, partition, h.hour), level) for h in hours)
            )
            total += sum(rows[0][0] for rows in counts)
        return total

    # -- messages ----------------------------------------------------------

    async def _check(self, queue: Queue) -> None:
        current = await self.get_queue(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            raise QueueNotFound()
        if (current.partitions, current.settings.consistency) != (
            queue.partitions,
            queue.settings.consistency,
        ):
            raise QueueChanged()

    async def _note_hours(self, qid: uuid.UUID, pairs: set[tuple[int, int]], level: int) -> None:
        """Record the hours written to, once per process and hour."""
        new = [(p, h) for p, h in pairs if (qid, p, h) not in self._known_hours]
        await asyncio.gather(*(self._run("add_hour", (qid, p, h), level) for p, h in new))
        if len(self._known_hours) > 100_000:
            self._known_hours.clear()
        self._known_hours.update((qid, p, h) for p, h in new)

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[MessageKey]:
        await self._check(queue)
        qid = uuid.UUID(queue.handle)
        level = self._write_levels[queue.settings.consistency]
        first = self._clock.take(len(messages))
        keys = [MessageKey(first + i, self._tail) for i in range(len(messages))]
        await self._note_hours(
            qid, {(m.partition, _hour(k.ts)) for m, k in zip(messages, keys, strict=True)}, level
        )
        await asyncio.gather(
            *(
                self._run(
                    "insert",
                    (qid, m.partition, _hour(k.ts), _uuid(k), m.body, m.content_type, m.ttl),
                    level,
                )
                for m, k in zip(messages, keys, strict=True)
            )
        )
        return keys

    async def read_range(
        self,
        queue: Queue,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
    ) -> list[Message]:
        qid = uuid.UUID(queue.handle)
        level = self._read_levels[queue.settings.consistency]
        settle = int(self.settle_seconds(queue.settings.consistency) * 10_000_000)
        newest = MessageKey(_clock_now() - settle, MAX_TAIL)
        oldest = MessageKey(0, MIN_TAIL)
        if since is not None and descending:
            # At or before ``since``, newest first; a pure time bound takes its whole tick.
            newest = min(newest, since if since.tail else MessageKey(since.ts, MAX_TAIL))
        elif since is not None:
            oldest = since if since.tail else MessageKey(since.ts, MIN_TAIL)
        lower, upper = _uuid(oldest), _uuid(newest)
        first_hour = max(_hour(oldest.ts), 0)
        hours = [r.hour for r in await self._run("hours_from", (qid, partition, first_hour), level)]
        last_hour = _hour(newest.ts)
        hours = [h for h in hours if h <= last_hour]
        if descending:
            hours.reverse()
        statement = "range_desc" if descending else "range_asc"
        found: list[Message] = []
        for hour in hours:
            rows = await self._run(
                statement, (qid, partition, hour, lower, upper, limit - len(found)), level
            )
            found.extend(Message(_key(r.id), partition, r.body, r.content_type) for r in rows)
            if len(found) >= limit:
                break
        return found

    async def get_messages(
        self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]
    ) -> list[Message]:
        qid = uuid.UUID(queue.handle)
        level = self._read_levels[queue.settings.consistency]
        results = await asyncio.gather(
            *(self._run("get", (qid, p, _hour(k.ts), _uuid(k)), level) for p, k in keys)
        )
        return [
            Message(key, partition, rows[0].body, rows[0].content_type)
            for (partition, key), rows in zip(keys, results, strict=True)
            if rows
        ]

    async def put_messages(
        self,
        queue: Queue,
        keys: Sequence[tuple[int, MessageKey]],
        body: str,
        content_type: str,
        ttl: int,
    ) -> None:
        await self._check(queue)
        qid = uuid.UUID(queue.handle)
        level = self._write_levels[queue.settings.consistency]
        await self._note_hours(qid, {(p, _hour(k.ts)) for p, k in keys}, level)
        await asyncio.gather(
            *(
                self._run("insert", (qid, p, _hour(k.ts), _uuid(k), body, content_type, ttl), level)
                for p, k in keys
            )
        )

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        qid = uuid.UUID(queue.handle)
        level = self._write_levels[queue.settings.consistency]
        await asyncio.gather(
            *(self._run("delete", (qid, p, _hour(k.ts), _uuid(k)), level) for p, k in keys)
        )


def _clock_now() -> int:
    return time.time_ns() // 100 + UNIX_EPOCH_TICKS


_STATEMENTS = {
    "ping": "SELECT release_version FROM system.local",
    "add_bucket": "INSERT INTO {ks}.queue_buckets (app, bucket) VALUES (?, ?)",
    "buckets": "SELECT bucket FROM {ks}.queue_buckets WHERE app = ? AND bucket >= ?",
    "create_queue": (
        "INSERT INTO {ks}.queues (app, bucket, name, qid, partitions, type, consistency,"
        " principles, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    ),
    "get_queue": (
        "SELECT name, qid, partitions, type, consistency, principles, created FROM {ks}.queues"
        " WHERE app = ? AND bucket = ? AND name = ?"
    ),
    "update_queue": (
        "UPDATE {ks}.queues SET partitions = ?, type = ?, consistency = ?, principles = ?"
        " WHERE app = ? AND bucket = ? AND name = ? IF qid = ?"
    ),
    "delete_queue": "DELETE FROM {ks}.queues WHERE app = ? AND bucket = ? AND name = ?",
    "list_queues": (
        "SELECT name, qid, partitions, type, consistency, principles, created FROM {ks}.queues"
        " WHERE app = ? AND bucket = ? AND name >= ? LIMIT ?"
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
    "range_asc": (
        "SELECT id, body, content_type FROM {ks}.messages WHERE qid = ? AND partition = ?"
        " AND hour = ? AND id >= ? AND id <= ? ORDER BY id ASC LIMIT ?"
    ),
    "range_desc": (
        "SELECT id, body, content_type FROM {ks}.messages WHERE qid = ? AND partition = ?"
        " AND hour = ? AND id >= ? AND id <= ? ORDER BY id DESC LIMIT ?"
    ),
    "get": (
        "SELECT body, content_type FROM {ks}.messages"
        " WHERE qid = ? AND partition = ? AND hour = ? AND id = ?"
    ),
    "delete": "DELETE FROM {ks}.messages WHERE qid = ? AND partition = ? AND hour = ? AND id = ?",
}


def _bridge(loop: asyncio.AbstractEventLoop, future: ResponseFuture) -> asyncio.Future[Any]:
    """An asyncio future for a driver future (whose callbacks run on the driver's thread)."""
    result: asyncio.Future[Any] = loop.create_future()

    def done(value: Any) -> None:
        if not result.done():
            result.set_result(value)

    def failed(error: BaseException) -> None:
        if not result.done():
            result.set_exception(error)

    def on_result(rows: Any) -> None:
        loop.call_soon_threadsafe(done, rows)

    def on_error(error: BaseException) -> None:
        loop.call_soon_threadsafe(failed, error)

    future.add_callbacks(on_result, on_error)
    return result
