"""The connection to the cluster: one driver session, prepared statements, consistency levels.

Consistency per request from the queue's level: weak → ONE, strong → QUORUM
(LOCAL_QUORUM with several data centres), very_strong → EACH_QUORUM for writes
(QUORUM on a single-DC keyspace) and QUORUM for reads. Queue metadata is
written at (LOCAL_)QUORUM and read there too, falling back to one replica.

Statements run as awaitables on the event loop the store was opened on,
whose thread also does the connections' I/O (``reactor.py``). Every failure of
the driver or the cluster (unreachable, too few replicas, a timeout, a
statement refused, a value that cannot be encoded) leaves this module as
:class:`StoreUnavailable`, the driver's exception chained.

What a statement costs the web node (issue 13 counts its CPU per message):
every statement is prepared once (``statements.py``) and bound by name; its
consistency (and serial consistency) is an attribute set on the bound
statement. Rows are named tuples of a class made once per column set
(:func:`rows_of`). Answers come whole (no paging: every read is bounded by a
``LIMIT`` or by the hour index's TTL, and the driver's paging handed back the
first 5,000 rows only). Protocol v4: v5 frames every message in segments
whose checksums the driver computes in Python, ~10 µs a statement (TCP's
checksums remain). A web node's driver cost per statement is ~50-70 µs of
CPU (measured on one local node: encoding, the request's future, its timer,
the query plan, decoding the answer and its metadata), so the store saves
statements where it can: a post's check of the queue row (``queues.py``), a
range read's hour index (``messages.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import struct
import threading
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from cassandra.protocol import ErrorMessage
from cassandra.query import (
    BatchStatement,
    BatchType,
    BoundStatement,
    PreparedStatement,
    _clean_column_name,
)

from queuey.storage.base import StoreUnavailable
from queuey.storage.cassandra import reactor, schema, statements, trace

#: What the driver raises for trouble. ``ErrorMessage`` covers server errors it has no
#: class for (on protocol v5, 0x1700 "CAS operation result is unknown"; on v4 Cassandra
#: reports that as a write timeout of type CAS).
DRIVER_ERRORS = (DriverException, RequestExecutionException, NoHostAvailable, ErrorMessage, OSError)
#: What binding a value the column cannot hold raises (a str that is no UTF-8, an int too big).
ENCODE_ERRORS = (TypeError, ValueError, OverflowError, struct.error)
#: The coordinators the last conditional statement of this task was sent to (traces only).
LAST_HOSTS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "last_hosts", default=()
)


#: Row classes by column names (see :func:`rows_of`); a few dozen statements make a few dozen.
_ROW_CLASSES: dict[tuple[str, ...], Any] = {}


def rows_of(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The driver's row factory: named tuples, as its default makes, of a class made once.

    The default (``named_tuple_factory``) makes a new class for every answer
    with rows: tens of µs, more than the rest of a short answer's decoding.
    """
    key = tuple(names)
    row = _ROW_CLASSES.get(key)
    if row is None:
        if len(_ROW_CLASSES) > 1000:
            _ROW_CLASSES.clear()
        fields = [_clean_column_name(name) for name in names]
        row = _ROW_CLASSES[key] = namedtuple("Row", fields, rename=True)
    return [row(*values) for values in rows]


@dataclass(frozen=True, slots=True)
class Levels:
    """Consistency levels by queue consistency, for writes and reads, and for queue metadata."""

    write: dict[str, int]
    read: dict[str, int]
    meta: int

    @classmethod
    def for_datacenters(cls, datacenters: int) -> Levels:
        multi_dc = datacenters > 1
        quorum = ConsistencyLevel.LOCAL_QUORUM if multi_dc else ConsistencyLevel.QUORUM
        every_dc = ConsistencyLevel.EACH_QUORUM if multi_dc else ConsistencyLevel.QUORUM
        return cls(
            write={"weak": ConsistencyLevel.ONE, "strong": quorum, "very_strong": every_dc},
            read={
                "weak": ConsistencyLevel.ONE,
                "strong": quorum,
                "very_strong": ConsistencyLevel.QUORUM,
            },
            meta=quorum,
        )


class Connection:
    """One cluster and session, with every statement prepared; closed until :meth:`open`."""

    def __init__(
        self,
        hosts: Sequence[str],
        keyspace: str,
        *,
        port: int,
        replication: int,
        datacenters: dict[str, int],
        create_schema: bool,
        request_timeout: float,
    ) -> None:
        self.hosts = list(hosts)
        self.keyspace = keyspace
        self.port = port
        self.replication = replication
        self.datacenters = datacenters
        self.create_schema = create_schema
        self.request_timeout = request_timeout
        self.levels = Levels.for_datacenters(len(datacenters))
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        self._loop_thread = 0

    def _connect(self, connection_class: type[reactor.LoopConnection]) -> Session:
        if self.datacenters:
            local_dc = next(iter(self.datacenters))
            balancing: Any = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc))
        else:
            balancing = TokenAwarePolicy(RoundRobinPolicy())
        profile = ExecutionProfile(
            load_balancing_policy=balancing,
            request_timeout=self.request_timeout,
            consistency_level=self.levels.meta,
            row_factory=rows_of,
        )
        self._cluster = Cluster(
            self.hosts,
            port=self.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connection_class=connection_class,
            protocol_version=4,
            connect_timeout=10,
            control_connection_timeout=10,
        )
        session = self._cluster.connect()
        session.default_fetch_size = None  # answers whole (the module's docstring)
        if self.create_schema:
            schema.create(session, self.keyspace, self.replication, self.datacenters)
        self._prepared = statements.prepare(session, self.keyspace)
        return session

    async def open(self) -> None:
        """Connect, create the schema if asked, prepare the statements.

        The connections do their I/O on this event loop (``reactor.py``): use the
        store on it, and close it before the loop ends.
        """
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        connection_class = reactor.connection_class(loop)
        try:
            self._session = await loop.run_in_executor(None, self._connect, connection_class)
        except DRIVER_ERRORS as exc:
            await self.close()
            raise StoreUnavailable(f"cannot reach Cassandra at {self.hosts}: {exc}") from exc

    async def close(self) -> None:
        """Shut the cluster connection down. Idempotent."""
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.get_running_loop().run_in_executor(None, cluster.shutdown)

    def bind(self, name: str, args: Sequence[Any]) -> BoundStatement:
        """Statement ``name`` with ``args`` encoded; StoreUnavailable if a value cannot be."""
        if self._session is None:
            raise StoreUnavailable("the store is closed")
        try:
            return self._prepared[name].bind(args)
        except ENCODE_ERRORS as exc:
            raise StoreUnavailable(
                f"Cassandra cannot store a value: {type(exc).__name__}: {exc}"
            ) from exc

    async def execute(
        self, statement: BoundStatement | BatchStatement, level: int, serial: int | None = None
    ) -> list[Any]:
        """Run a statement at ``level`` (a conditional one's Paxos phase at ``serial``).

        Driver trouble becomes StoreUnavailable.
        """
        session = self._session
        if session is None:
            raise StoreUnavailable("the store is closed")
        statement.consistency_level = level
        if serial is not None:
            statement.serial_consistency_level = serial
        future = None
        try:
            future = session.execute_async(statement, timeout=self.request_timeout)
            rows: list[Any] = await _bridge(asyncio.get_running_loop(), self._loop_thread, future)
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"Cassandra: {type(exc).__name__}: {exc}") from exc
        finally:
            if serial is not None and future is not None and trace.enabled():
                LAST_HOSTS.set(tuple(str(h.address) for h in future.attempted_hosts))
        return rows

    async def run(
        self, name: str, args: Sequence[Any], level: int, serial: int | None = None
    ) -> list[Any]:
        """Bind and execute prepared statement ``name`` at ``level`` (and ``serial``)."""
        return await self.execute(self.bind(name, args), level, serial)

    async def meta(self, name: str, args: Sequence[Any]) -> list[Any]:
        """Read queue metadata at quorum, falling back to one replica when too few answer.

        Metadata changes rarely; serving it from one replica keeps ``weak``
        queues readable and writable while a quorum is down.
        """
        try:
            return await self.run(name, args, self.levels.meta)
        except StoreUnavailable:
            return await self.run(name, args, ConsistencyLevel.ONE)

    async def batch(self, bound: Sequence[BoundStatement], level: int, *, logged: bool) -> None:
        """Run ``bound`` as one batch: LOGGED (all or nothing across partitions) or UNLOGGED.

        An UNLOGGED batch whose statements share one partition is one mutation:
        atomic and isolated on each replica, and exempt from the cluster's batch
        size limit. A LOGGED batch is applied entirely or not at all (through
        the batchlog), within ``batch_size_fail_threshold``.
        """
        if len(bound) == 1:
            await self.execute(bound[0], level)
            return
        batch = BatchStatement(batch_type=BatchType.LOGGED if logged else BatchType.UNLOGGED)
        for statement in bound:
            batch.add(statement)
        await self.execute(batch, level)


def _bridge(
    loop: asyncio.AbstractEventLoop, thread: int, future: ResponseFuture
) -> asyncio.Future[Any]:
    """An asyncio future for a driver future.

    Its callbacks run on the loop's thread (``thread``, where the connections
    read, ``reactor.py``), or on one of the driver's threads for an error
    found there (a connection lost while a heartbeat ran, a request failed
    when its connection was closed from another thread).
    """
    result: asyncio.Future[Any] = loop.create_future()

    def done(value: Any) -> None:
        if not result.done():
            result.set_result(value)

    def failed(error: BaseException) -> None:
        if not result.done():
            result.set_exception(error)

    def on_result(rows: Any) -> None:
        if threading.get_ident() == thread:
            done(rows)
        else:
            reactor.call(loop, thread, done, rows)

    def on_error(error: BaseException) -> None:
        if threading.get_ident() == thread:
            failed(error)
        else:
            reactor.call(loop, thread, failed, error)

    future.add_callbacks(on_result, on_error)
    return result
