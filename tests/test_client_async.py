"""The asyncio client against a real ``queuey serve``: every method, ``consume``, and
``iter(follow=True)`` across a server restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from queuey.client import (
    AccessDenied,
    AsyncClient,
    AsyncQueue,
    Delivery,
    InvalidGroupName,
    InvalidQueueName,
    LeaseLost,
    Retry,
    ValidationError,
)
from tests.conftest import Server
from tests.test_client_support import KEY, OTHER_KEY, configure, restart, unique

QUICK = Retry(attempts=20, backoff=0.05, max_backoff=0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(configure(tmp_path_factory.mktemp("aclient"))).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, app="app1", key=KEY) as c:
        yield c


@pytest.fixture
async def queue(client: AsyncClient) -> AsyncQueue:
    q = client.queue(unique())
    await q.create(partitions=2)
    return q


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_queue_and_message_methods(client: AsyncClient) -> None:
    q = client.queue(unique("a@b:c+d"))
    created = await q.create(partitions=2, consistency="strong")
    assert (created["partitions"], created["consistency"]) == (2, "strong")
    assert await q.create() == created
    assert (await q.update(partitions=3))["partitions"] == 3

    sent = await q.post("hello", ttl=600, partition=1, content_type="text/x-greeting")
    batch = await q.post_many([{"body": f"b{i}", "partition": 1 + i % 3} for i in range(30)])
    [first] = await q.read(partitions=[1], limit=1)
    assert (first.message_id, first.body, first.content_type) == (
        sent.message_id,
        "hello",
        "text/x-greeting",
    )
    assert len(await q.read(partitions=[1, 2, 3])) == 31
    assert [m.message_id for m in await q.read(order="descending", limit=1, partitions=[3])] == [
        batch[-1].message_id
    ]
    assert await q.read(since=time.time() + 60, wait=1) == []

    everything = [m async for m in q.iter(page_size=4)]
    assert len(everything) == 31 and len({m.message_id for m in everything}) == 31
    assert (await q.settings(count=True))["count"] == 31

    assert [m.body for m in await q.get([sent, batch[0].ref])] == ["hello", "b0"]
    await q.put([sent], "changed")
    assert (await q.get([sent]))[0].body == "changed"
    await q.delete_messages([sent])
    assert await q.get([sent]) == []

    names = [item["queue_name"] async for item in client.queues(page_size=1)]
    assert q.name in names and names == sorted(names)

    with pytest.raises(ValidationError) as invalid:
        await q.post("x", partition=7)
    assert invalid.value.fields == {"partition": "7 is greater than maximum value 3"}
    await q.delete()
    with pytest.raises(InvalidQueueName):
        await q.read()


async def test_errors(server: Server, queue: AsyncQueue) -> None:
    async with AsyncClient(server.url, app="app1", key=OTHER_KEY) as stranger:
        with pytest.raises(AccessDenied) as denied:
            await stranger.queue(queue.name).post("x")
    assert (denied.value.status, denied.value.error_msg) == (
        403,
        {"AccessDenied": "Access was denied to this resource."},
    )


async def test_group_methods(queue: AsyncQueue) -> None:
    group = queue.group("workers")
    assert (await group.create(guarantee="exactly_once", lease_seconds=20))["lease_seconds"] == 20
    assert (await group.update(ordered=True))["ordered"] is True
    assert [g["group"] for g in await queue.groups()] == ["workers"]
    await queue.post_many([{"body": f"job {i}", "partition": 2} for i in range(3)])
    claimed = await group.claim(limit=3, wait=1, partitions=[2], consumer="async")
    assert [d.body for d in claimed] == ["job 0", "job 1", "job 2"]
    assert await group.extend(claimed, 30) == [d.receipt for d in claimed]
    assert await group.release(claimed[2:], delay=0) == [claimed[2].receipt]
    assert await group.ack(claimed[:1]) == [claimed[0].receipt]
    with pytest.raises(LeaseLost) as lost:
        await group.ack(claimed[1:])
    assert (lost.value.acknowledged, lost.value.lost) == (
        [claimed[1].receipt],
        [claimed[2].receipt],
    )
    [again] = await group.claim()
    target = queue.client.queue(unique())
    await target.create()
    [published] = await group.ack_and_publish([again], [{"queue": target.name, "body": "out"}])
    assert (await target.read())[0].message_id == published.message_id
    state = await group.seek("earliest", partitions=[2])
    assert state["partitions"][1]["pending"] == 3
    assert (await group.state())["acknowledged"] == 3
    await group.delete()
    with pytest.raises(InvalidGroupName):
        await group.state()


async def test_consume_fails_then_succeeds_and_extends_leases(queue: AsyncQueue) -> None:
    group = queue.group("consumers")
    await group.create(guarantee="exactly_once", lease_seconds=1)
    await queue.post("flaky", partition=1)
    stop = asyncio.Event()
    seen: list[int] = []
    others: list[list[Delivery]] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.deliveries)
        if delivery.deliveries == 1:
            raise RuntimeError("first time fails")
        for _ in range(5):  # 2.5 lease lengths, with the lease kept alive by the task
            await asyncio.sleep(0.5)
            others.append(await group.claim())
        stop.set()

    tally = await group.consume(handler, wait=1, stop=stop)
    assert seen == [1, 2]
    assert others == [[]] * 5
    assert (tally.handled, tally.failed, tally.released, tally.acknowledged, tally.lost) == (
        1,
        1,
        1,
        1,
        0,
    )
    assert (await group.state())["acknowledged"] == 1


async def test_cancelled_consume_gives_back_what_it_holds(queue: AsyncQueue) -> None:
    group = queue.group("cancelled")
    await group.create()
    await queue.post_many([{"body": str(i), "partition": 1} for i in range(3)])
    started = asyncio.Event()

    async def handler(_: Delivery) -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(group.consume(handler, limit=3, wait=1))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [d.body for d in await group.claim(limit=10)] == ["0", "1", "2"]


async def test_iter_follow_survives_a_server_restart(tmp_path: Path, serve: type[Server]) -> None:
    server = serve(configure(tmp_path)).start()
    async with AsyncClient(server.url, app="app1", key=KEY, retry=QUICK, timeout=5) as client:
        queue = client.queue("restarting")
        await queue.create()
        stop = asyncio.Event()
        read: list[str] = []

        async def follow() -> None:
            async for message in queue.iter(follow=True, stop=stop, wait=1, poll=0.05):
                read.append(message.body)

        reader = asyncio.create_task(follow())
        try:
            for i in range(3):
                await queue.post(f"before {i}")
            await until(lambda: len(read) == 3)
            await asyncio.to_thread(restart, server)
            for i in range(3):
                await queue.post(f"after {i}")
            await until(lambda: len(read) == 6)
        finally:
            stop.set()
            await asyncio.wait_for(reader, 10)
    assert read == [f"before {i}" for i in range(3)] + [f"after {i}" for i in range(3)]
