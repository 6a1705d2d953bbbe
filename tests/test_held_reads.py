"""Range reads with ``wait`` (SPEC §3): held until a message is readable, the wait ends,
the queue is deleted (404) or the server stops; in-process, on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from contextlib import AsyncExitStack

import httpx
import pytest

from queuey.client.sse import EventParser
from queuey.config import Settings
from tests.api_support import error
from tests.conftest import APP1, connect, make_queue

#: SPEC: answered within 1 s of the message becoming readable; checked generously.
BOUND = 5.0


@pytest.mark.parametrize(
    ("wait", "message"),
    [
        ("61", "61 is greater than maximum value 60"),
        ("-1", "-1 is less than minimum value 0"),
        ("soon", '"soon" is not a number'),
    ],
)
async def test_a_bad_wait_is_400_keyed_wait(
    client: httpx.AsyncClient, wait: str, message: str
) -> None:
    name = await make_queue(client)
    response = await client.get(f"/v1/app1/{name}", params={"wait": wait}, headers=APP1)
    assert error(response, 400) == {"wait": message}


async def test_a_post_answers_a_held_read(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    url = f"/v1/app1/{name}"
    held = asyncio.create_task(
        client.get(url, params={"wait": "30", "partitions": "2"}, headers=APP1)
    )
    await asyncio.sleep(0.3)
    assert not held.done()
    # A message in another partition does not answer it.
    await client.post(url, content=b"elsewhere", headers={**APP1, "X-Partition": "1"})
    await asyncio.sleep(0.3)
    assert not held.done()
    posted = time.monotonic()
    await client.post(url, content=b"hello", headers={**APP1, "X-Partition": "2"})
    response = await asyncio.wait_for(held, BOUND)
    assert time.monotonic() - posted < BOUND
    assert response.status_code == 200
    assert [m["body"] for m in response.json()["messages"]] == ["hello"]


async def test_a_read_finding_messages_is_not_held(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    await client.post(f"/v1/app1/{name}", content=b"there", headers=APP1)
    response = await asyncio.wait_for(
        client.get(f"/v1/app1/{name}", params={"wait": "60"}, headers=APP1), BOUND
    )
    assert [m["body"] for m in response.json()["messages"]] == ["there"]


async def test_a_held_read_ends_empty_when_the_wait_ends(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    started = time.monotonic()
    response = await client.get(f"/v1/app1/{name}", params={"wait": "1"}, headers=APP1)
    assert time.monotonic() - started >= 1.0
    assert response.json() == {"status": "ok", "messages": []}


async def test_a_message_before_since_does_not_answer(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    url = f"/v1/app1/{name}"
    first = (await client.post(url, content=b"old", headers=APP1)).json()["messages"][0]
    # Since a time after it: held until a newer one.
    since = f"{float(first['timestamp']) + 0.001:.7f}"
    held = asyncio.create_task(client.get(url, params={"wait": "30", "since": since}, headers=APP1))
    await asyncio.sleep(0.3)
    assert not held.done()
    await client.post(url, content=b"new", headers=APP1)
    response = await asyncio.wait_for(held, BOUND)
    assert [m["body"] for m in response.json()["messages"]] == ["new"]


async def test_a_put_by_id_answers_a_held_read(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    url = f"/v1/app1/{name}"
    held = asyncio.create_task(client.get(url, params={"wait": "30"}, headers=APP1))
    await asyncio.sleep(0.3)
    message_id = "d9b5e2f4a9a611f1b0a5c7e1d2f3a4b5"
    assert (
        await client.put(f"{url}/{message_id}", content=b"put", headers=APP1)
    ).status_code == 200
    response = await asyncio.wait_for(held, BOUND)
    assert [m["message_id"] for m in response.json()["messages"]] == [message_id]


async def test_deleting_the_queue_ends_a_held_read_with_404(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    held = asyncio.create_task(client.get(f"/v1/app1/{name}", params={"wait": "30"}, headers=APP1))
    await asyncio.sleep(0.3)
    assert (await client.delete(f"/v1/app1/{name}", headers=APP1)).status_code == 200
    response = await asyncio.wait_for(held, BOUND)
    assert "InvalidQueueName" in error(response, 404)


async def test_head_ignores_wait(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    started = time.monotonic()
    response = await client.head(f"/v1/app1/{name}", params={"wait": "30"}, headers=APP1)
    assert response.status_code == 200 and response.content == b""
    assert time.monotonic() - started < 25
    # Ignored: not even checked (a GET with these values is a 400 keyed wait).
    for value in ("99", "-1", "soon"):
        response = await client.head(f"/v1/app1/{name}", params={"wait": value}, headers=APP1)
        assert response.status_code == 200, value
        response = await client.get(f"/v1/app1/{name}", params={"wait": value}, headers=APP1)
        assert set(error(response, 400)) == {"wait"}, value


async def test_a_waiting_claim_is_woken_by_a_post(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    url = f"/v1/app1/{name}"
    assert (await client.put(f"{url}/groups/g", json={}, headers=APP1)).status_code == 201
    claim = asyncio.create_task(
        client.post(f"{url}/groups/g/claim", json={"wait": 30}, headers=APP1)
    )
    await asyncio.sleep(0.3)
    assert not claim.done()
    await client.post(url, content=b"work", headers=APP1)
    response = await asyncio.wait_for(claim, BOUND)
    assert [m["body"] for m in response.json()["messages"]] == ["work"]


async def test_a_write_through_another_node_answers_held_reads_and_streams(
    settings: Settings,
) -> None:
    """Two apps on one store (two processes on one SQLite file, two web nodes on one
    Cassandra cluster): a post and a PUT through one answer a read held on the other, after
    the queue's settle delay (1 s for weak queues here: 0 on SQLite) and within SPEC's bound."""
    settle = 1.0
    tuned = dataclasses.replace(settings, storage_settle_weak=settle, stream_max_seconds=8.0)
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(tuned)) for _ in range(2)]
        one, other = clients
        name = await make_queue(one, consistency="weak")
        url = f"/v1/app1/{name}"
        delay = settle if "cassandra" in tuned.storage_url else 0.0
        # A stream on the other node too (it ends after stream_max_seconds: read whole).
        streamed = asyncio.create_task(other.get(f"{url}/stream", headers=APP1))
        for write in ("post", "put"):
            held = asyncio.create_task(
                other.get(url, params={"wait": "30", "since": f"{time.time():.7f}"}, headers=APP1)
            )
            await asyncio.sleep(0.3)
            assert not held.done()
            written = time.monotonic()
            if write == "post":
                await one.post(url, content=b"post", headers=APP1)
            else:  # an id of now, in another partition than a post would pick: a PUT's own
                now = await one.post("/v1/app1", json={"queue_name": "clock"}, headers=APP1)
                assert now.status_code in (200, 201)
                stamp = await one.post("/v1/app1/clock", content=b"t", headers=APP1)
                message_id = stamp.json()["messages"][0]["key"]
                await one.put(f"{url}/{message_id}", content=b"put", headers=APP1)
            response = await asyncio.wait_for(held, delay + BOUND)
            took = time.monotonic() - written
            assert [m["body"] for m in response.json()["messages"]] == [write]
            assert delay * 0.8 <= took < delay + BOUND
        events = EventParser().feed((await streamed).content)
        assert [json.loads(e.data)["body"] for e in events] == ["post", "put"]
        # Deleted through one node: a read held on the other ends with 404 (the mark says gone).
        held = asyncio.create_task(
            other.get(url, params={"wait": "30", "since": "9" * 12}, headers=APP1)
        )
        await asyncio.sleep(0.3)
        assert (await one.delete(url, headers=APP1)).status_code == 200
        assert "InvalidQueueName" in error(await asyncio.wait_for(held, BOUND), 404)


async def test_an_overwrite_of_a_future_id_does_not_hide_other_nodes_posts(
    settings: Settings,
) -> None:
    """A PUT's ids are the caller's: one far in the future, written through the node that
    holds a read, must not make that node take the next mark moves for its own writes."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(settings)) for _ in range(2)]
        here, there = clients
        name = await make_queue(here, partitions=2)
        url = f"/v1/app1/{name}"
        params = {"wait": "30", "partitions": "2", "since": f"{time.time():.7f}"}
        held = asyncio.create_task(here.get(url, params=params, headers=APP1))
        await asyncio.sleep(0.3)
        future_id = "00000000fff011ff8000000000000001"  # a time in the 3900s
        assert (await here.put(f"{url}/1:{future_id}", content=b"f", headers=APP1)).is_success
        await asyncio.sleep(0.3)
        assert not held.done()
        await there.post(url, content=b"from there", headers={**APP1, "X-Partition": "2"})
        response = await asyncio.wait_for(held, BOUND)
        assert [m["body"] for m in response.json()["messages"]] == ["from there"]
