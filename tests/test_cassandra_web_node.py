"""Cassandra: what a web node spares per request, and that it still keeps every promise.

Issue 13 counts the web node's CPU per message. A post whose queue row this
process read less than ``queue_check_seconds`` ago reads no queue row; a
settled range read takes the hour index this process read less than
``HOURS_SECONDS`` ago; each hour's index row is written once per process;
the driver's connections do their I/O on the store's event loop
(``reactor.py``), leaving no reference cycles behind. These tests check what
is spared and what must hold anyway: posts of another web node show to a
remembered index, this node's own overwrites and changes are seen at once,
another node's deletion within the window it is documented to take.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from cassandra.connection import ConnectionException

from queuey.storage.base import (
    NewMessage,
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    StoreUnavailable,
)
from queuey.storage.cassandra import CassandraStorage, messages, reactor
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import HOUR_TICKS, hour
from queuey.storage.keys import MessageKey, now_ticks

pytestmark = pytest.mark.cassandra

#: The settle delay of every queue here (range reads hide younger messages).
SETTLE = 0.5
#: queue_check_seconds of the stores here.
CHECK = 1.0


def new_store(url: str, check: float = CHECK) -> CassandraStorage:
    delays = dict.fromkeys(("weak", "strong", "very_strong"), SETTLE)
    return CassandraStorage.from_url(f"{url}&queue_check_seconds={check}", settle=delays)


@contextlib.asynccontextmanager
async def started(url: str) -> AsyncIterator[CassandraStorage]:
    storage = new_store(url)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def store(cassandra_keyspace: str) -> AsyncIterator[CassandraStorage]:
    async with started(cassandra_keyspace) as storage:
        yield storage


@pytest.fixture
async def other(cassandra_keyspace: str) -> AsyncIterator[CassandraStorage]:
    """Another web node on the same data."""
    async with started(cassandra_keyspace) as storage:
        yield storage


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the statements every store binds, in order (every statement is bound)."""
    names: list[str] = []
    bind = Connection.bind

    def recording(self: Connection, name: str, args: Any) -> Any:
        names.append(name)
        return bind(self, name, args)

    monkeypatch.setattr(Connection, "bind", recording)
    yield names


@pytest.fixture
def long_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered hour index stays for the test (a loaded machine may take seconds)."""
    monkeypatch.setattr(messages, "HOURS_SECONDS", 60.0)


def msg(body: str = "x", ikey: str | None = None) -> NewMessage:
    return NewMessage(body, "text/plain", 3600, 1, idempotency_key=ikey)


async def new_queue(store: CassandraStorage, **settings: Any) -> Queue:
    queue, created = await store.create_queue("app", "q", QueueSettings(**settings))
    assert created
    return queue


async def bodies(store: CassandraStorage, queue: Queue, *, descending: bool = False) -> list[str]:
    return [m.body for m in await store.read_range(queue, 1, None, 100, descending)]


# -- what a request costs ----------------------------------------------------------


async def test_a_warm_post_and_read_run_one_statement_each(
    store: CassandraStorage, statements: list[str], long_index: None
) -> None:
    store._queues._check_seconds = 60.0  # a loaded machine may take seconds
    queue = await new_queue(store)
    await store.post_messages(queue, [msg("first")])
    await asyncio.sleep(SETTLE)
    assert await bodies(store, queue) == ["first"]  # the index is read, and remembered
    began = hour(now_ticks())
    statements.clear()
    for n in range(5):
        await store.post_messages(queue, [msg(f"m{n}")])
    await asyncio.sleep(SETTLE)
    assert await bodies(store, queue) == ["first", "m0", "m1", "m2", "m3", "m4"]
    # The hour's index row was written by the first post; the queue row read by the create.
    turned = hour(now_ticks()) != began  # the hour turned meanwhile: one more index row
    assert statements == ["add_hour"] * turned + ["insert_at"] * 5 + ["range_asc"] * (1 + turned)


async def test_each_hour_is_indexed_once_per_process_and_partition(
    store: CassandraStorage, statements: list[str]
) -> None:
    queue = await new_queue(store, partitions=2)
    began = hour(now_ticks())
    posts = [NewMessage("x", "text/plain", 3600, 1 + n % 2) for n in range(6)]
    await asyncio.gather(*(store.post_messages(queue, [m]) for m in posts[:2]))
    await asyncio.gather(*(store.post_messages(queue, [m]) for m in posts))
    turned = hour(now_ticks()) != began
    # Two posts racing into a partition's new hour may both write its row, no more.
    assert statements.count("add_hour") <= 2 * (1 + turned)
    assert statements.count("insert_at") == 8


# -- the remembered hour index ------------------------------------------------------


async def test_posts_of_another_node_show_to_a_remembered_index(
    store: CassandraStorage, other: CassandraStorage, statements: list[str], long_index: None
) -> None:
    queue = await new_queue(store)
    assert await bodies(store, queue) == []  # an empty index, remembered
    await other.post_messages(queue, [msg("theirs")])
    await asyncio.sleep(SETTLE + 0.1)
    statements.clear()
    assert await bodies(store, queue) == ["theirs"]
    assert await bodies(store, queue, descending=True) == ["theirs"]
    assert "hours_from" not in statements  # the remembered index, and the hours since


async def test_an_overwrite_in_an_hour_the_index_lacks_shows_at_once_on_its_node(
    store: CassandraStorage, long_index: None
) -> None:
    queue = await new_queue(store)
    (posted,) = await store.post_messages(queue, [msg("now")])
    await asyncio.sleep(SETTLE)
    assert await bodies(store, queue) == ["now"]  # remembered: one hour
    old = MessageKey(posted.key.ts - 3 * HOUR_TICKS, posted.key.tail)
    await store.put_messages(queue, [(1, old)], "hours ago", "text/plain", 600)
    assert await bodies(store, queue) == ["hours ago", "now"]
    assert await bodies(store, queue, descending=True) == ["now", "hours ago"]


async def test_a_read_with_no_settle_delay_reads_the_index(cassandra_keyspace: str) -> None:
    storage = CassandraStorage.from_url(cassandra_keyspace, settle={"weak": 0.0})
    await storage.start()
    try:
        queue = await new_queue(storage, consistency="weak")
        assert await bodies(storage, queue) == []
        await storage.post_messages(queue, [msg("seen")])
        assert await bodies(storage, queue) == ["seen"]
        assert storage._messages._hours == {}
    finally:
        await storage.close()


# -- the queue row a post checks -----------------------------------------------------


async def test_another_nodes_deletion_refuses_posts_once_the_window_ends(
    store: CassandraStorage, other: CassandraStorage
) -> None:
    queue = await new_queue(store)
    await store.post_messages(queue, [msg()])  # the row is remembered
    await other.delete_queue(queue)
    # A post may still be stored into the deleted incarnation for up to CHECK seconds
    # (where nothing reads it); then it is refused.
    await asyncio.sleep(CHECK + 0.1)
    with pytest.raises(QueueNotFound):
        await store.post_messages(queue, [msg()])


async def test_keyed_posts_always_read_the_row(
    store: CassandraStorage, other: CassandraStorage
) -> None:
    queue = await new_queue(store)
    await store.post_messages(queue, [msg()])  # the row is remembered
    grown = await other.update_queue(queue, QueueSettings(partitions=3))
    with pytest.raises(QueueChanged):
        await store.post_messages(queue, [msg("keyed", ikey="k")])
    await store.post_messages(grown, [msg("keyed", ikey="k")])
    await other.delete_queue(grown)
    with pytest.raises(QueueNotFound):
        await store.post_messages(grown, [msg("keyed", ikey="k2")])


async def test_without_a_window_every_post_reads_the_row(
    cassandra_keyspace: str, other: CassandraStorage
) -> None:
    storage = new_store(cassandra_keyspace, check=0.0)
    await storage.start()
    try:
        queue = await new_queue(storage)
        await storage.post_messages(queue, [msg()])
        await other.update_queue(queue, QueueSettings(consistency="weak"))
        with pytest.raises(QueueChanged):
            await storage.post_messages(queue, [msg()])
    finally:
        await storage.close()


async def test_own_changes_are_seen_at_once(store: CassandraStorage) -> None:
    queue = await new_queue(store)
    await store.post_messages(queue, [msg()])
    await store.update_queue(queue, QueueSettings(partitions=2))
    with pytest.raises(QueueChanged):
        await store.post_messages(queue, [msg()])
    current = await store.get_queue("app", "q")
    assert current is not None
    await store.post_messages(current, [msg()])
    await store.delete_queue(current)
    with pytest.raises(QueueNotFound):
        await store.post_messages(current, [msg()])


def test_queue_check_seconds_in_the_url() -> None:
    url = "cassandra://127.0.0.1/ks?replication=1"
    assert CassandraStorage.from_url(url)._queues._check_seconds == 2.0
    assert CassandraStorage.from_url(f"{url}&queue_check_seconds=0")._queues._check_seconds == 0
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(ValueError):
            CassandraStorage.from_url(f"{url}&queue_check_seconds={bad}")


# -- the connections on the event loop -------------------------------------------------


async def test_statements_leave_no_reference_cycles(store: CassandraStorage) -> None:
    """The driver's request and its timer referred to each other: ~30 objects a statement
    (its rows included) were left for the garbage collector."""
    queue = await new_queue(store)
    await store.post_messages(queue, [msg()])
    await asyncio.sleep(SETTLE)
    await bodies(store, queue)
    gc.collect()
    gc.disable()
    try:
        calls = 0
        for _ in range(50):
            await store.post_messages(queue, [msg()])
            await store.get_queue("app", "q")
            await bodies(store, queue)
            calls += 3
        assert gc.collect() < calls
    finally:
        gc.enable()


async def test_a_statement_that_times_out_is_unavailable_and_the_connection_serves_on(
    store: CassandraStorage,
) -> None:
    queue = await new_queue(store)
    timeout = store._db.request_timeout
    store._db.request_timeout = 1e-6
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.post_messages(queue, [msg()])
    finally:
        store._db.request_timeout = timeout
    await store.ping()
    (posted,) = await store.post_messages(queue, [msg("after")])
    found = await store.get_messages(queue, [(1, posted.key)])
    assert [m.body for m in found] == ["after"]


async def test_writes_and_answers_larger_than_a_socket_buffer(store: CassandraStorage) -> None:
    queue = await new_queue(store)
    big = [msg(f"{n:03d}" + "y" * 150_000) for n in range(24)]  # 3.6 MB: several batches
    await asyncio.gather(store.post_messages(queue, big[:12]), store.post_messages(queue, big[12:]))
    await asyncio.sleep(SETTLE)
    found = await bodies(store, queue)
    assert sorted(found) == sorted(m.body for m in big)


def test_a_store_opened_on_a_loop_that_ended_closes_on_another(cassandra_keyspace: str) -> None:
    storage = new_store(cassandra_keyspace)
    asyncio.run(storage.start())
    asyncio.run(asyncio.wait_for(storage.close(), 30))


async def test_no_connection_is_opened_on_the_loops_thread() -> None:
    """The driver waits for a connection's handshake where it opens it: on the loop's thread
    that would stall the loop until the connect timeout."""
    connection = reactor.connection_class(asyncio.get_running_loop())
    with pytest.raises(ConnectionException):
        connection("127.0.0.1", connect_timeout=1)


def test_rows_are_named_tuples_of_one_class_per_column_set() -> None:
    from queuey.storage.cassandra.session import rows_of

    first = rows_of(["a", "[applied]"], [(1, True), (2, False)])
    second = rows_of(["a", "[applied]"], [(3, True)])
    assert type(first[0]) is type(second[0])
    assert first[1].a == 2 and first[0][1] is True and first[0].applied is True
    assert rows_of(["a", "b"], [])[:] == []
    assert uuid.UUID(int=0) == rows_of(["id"], [(uuid.UUID(int=0),)])[0].id


async def test_an_index_longer_than_a_page_is_read_whole(cassandra_keyspace: str) -> None:
    """A partition's hour index outlives its messages (a year): the driver paged its answer
    at 5,000 rows and the store read the first page only, missing the newest hours."""
    storage = CassandraStorage.from_url(cassandra_keyspace, settle={"weak": 0.0})
    await storage.start()
    try:
        queue = await new_queue(storage, consistency="weak")
        (posted,) = await storage.post_messages(queue, [msg("newest")])
        qid, level = uuid.UUID(queue.handle), storage._levels.write["weak"]
        latest = hour(posted.key.ts)
        old = range(latest - 5200, latest - 100)  # hours of expired messages
        gate = asyncio.Semaphore(64)

        async def index(h: int) -> None:
            async with gate:
                await storage._db.run("add_hour", (qid, 1, h), level)

        await asyncio.gather(*(index(h) for h in old))
        since = MessageKey(posted.key.ts - 200 * HOUR_TICKS, b"")
        assert [m.body for m in await storage.read_range(queue, 1, since, 10, False)] == ["newest"]
        assert [m.body for m in await storage.read_range(queue, 1, None, 10, True)] == ["newest"]
    finally:
        await storage.close()
