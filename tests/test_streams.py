"""GET /v1/{app}/{queue}/stream (SPEC §7), in-process on every backend.

httpx's ASGI transport hands a response over once the app has finished it, so
these streams end by ``stream_max_seconds`` (a few seconds) and are read
whole; tests/test_live_processes.py reads live streams from real servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from types import MappingProxyType

import httpx
import pytest

from queuey.client.sse import EventParser
from queuey.config import ApplicationLimits, Settings
from tests.api_support import error
from tests.conftest import ALLOWED_ORIGIN, APP1, connect, make_queue

#: How long the in-process streams last.
SECONDS = 2.0


@pytest.fixture
async def streaming(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over in-process HTTP, its streams ending after ``SECONDS``."""
    tuned = dataclasses.replace(settings, stream_max_seconds=SECONDS, stream_heartbeat=0.5)
    async with connect(tuned) as c:
        yield c


def events(response: httpx.Response) -> list[tuple[str | None, dict[str, object]]]:
    """(id, message) of each event of a whole stream, after checking how it begins."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content.startswith(b"retry: 1000\n\n")
    parser = EventParser()
    found = parser.feed(response.content)
    assert all(e.event == "message" for e in found)
    return [(e.id, json.loads(e.data)) for e in found]


async def post(client: httpx.AsyncClient, name: str, body: str, partition: int = 1) -> str:
    response = await client.post(
        f"/v1/app1/{name}", content=body.encode(), headers={**APP1, "X-Partition": str(partition)}
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()["messages"][0]["key"]
    return message_id


def bodies(found: list[tuple[str | None, dict[str, object]]]) -> list[object]:
    return [message["body"] for _, message in found]


async def test_a_stream_starts_after_the_newest_message(streaming: httpx.AsyncClient) -> None:
    name = await make_queue(streaming)
    await post(streaming, name, "before")
    opened = asyncio.create_task(streaming.get(f"/v1/app1/{name}/stream", headers=APP1))
    await asyncio.sleep(0.5)
    ids = [await post(streaming, name, f"after {i}") for i in range(3)]
    found = events(await opened)
    assert bodies(found) == ["after 0", "after 1", "after 2"]
    assert [i for i, _ in found] == ids
    first = found[0][1]
    assert set(first) == {"message_id", "timestamp", "body", "partition", "content_type"}


async def test_since_is_inclusive_and_last_event_id_exclusive(
    streaming: httpx.AsyncClient,
) -> None:
    name = await make_queue(streaming)
    ids = [await post(streaming, name, f"m{i}") for i in range(4)]
    url = f"/v1/app1/{name}/stream"
    since, resumed = await asyncio.gather(
        streaming.get(url, params={"since": ids[1]}, headers=APP1),
        streaming.get(url, params={"since": ids[0]}, headers={**APP1, "Last-Event-ID": ids[2]}),
    )
    assert bodies(events(since)) == ["m1", "m2", "m3"]
    assert bodies(events(resumed)) == ["m3"]  # the header wins over since


async def test_since_a_timestamp(streaming: httpx.AsyncClient) -> None:
    name = await make_queue(streaming)
    await post(streaming, name, "old")
    messages = (await streaming.get(f"/v1/app1/{name}", headers=APP1)).json()["messages"]
    await post(streaming, name, "new")
    response = await streaming.get(
        f"/v1/app1/{name}/stream", params={"since": messages[0]["timestamp"]}, headers=APP1
    )
    assert bodies(events(response)) == ["old", "new"]


async def test_events_are_ordered_by_id_across_partitions(streaming: httpx.AsyncClient) -> None:
    name = await make_queue(streaming, partitions=3)
    url = f"/v1/app1/{name}"
    first = await post(streaming, name, "p3", 3)
    for i, partition in enumerate([1, 2, 3, 2, 1]):
        await post(streaming, name, f"m{i}", partition)
    # One id in two partitions (PUT by id), just after the first: partition 1's event first.
    same = first[:16] + "bfffffffffffffff"
    await streaming.put(f"{url}/2:{same},1:{same}", content=b"twin", headers=APP1)
    opened = asyncio.create_task(streaming.get(f"{url}/stream?since={first}", headers=APP1))
    await asyncio.sleep(0.5)
    await post(streaming, name, "live", 2)
    found = events(await opened)
    keys = [(str(m["message_id"]), m["partition"]) for _, m in found]
    assert keys == sorted(keys, key=lambda k: (int(k[0][13:16] + k[0][8:12] + k[0][:8], 16), k))
    twins = [m["partition"] for i, m in found if i == same]
    assert twins == [1, 2]
    assert bodies(found)[:7] == ["p3", "twin", "twin", "m0", "m1", "m2", "m3"]
    assert bodies(found)[-1] == "live"


async def test_partitions_limit_a_stream(streaming: httpx.AsyncClient) -> None:
    name = await make_queue(streaming, partitions=3)
    first = await post(streaming, name, "one", 1)
    await post(streaming, name, "two", 2)
    await post(streaming, name, "three", 3)
    response = await streaming.get(
        f"/v1/app1/{name}/stream",
        params={"since": first, "partitions": "3,1,9", "order": "descending", "limit": "1"},
        headers=APP1,
    )
    assert bodies(events(response)) == ["one", "three"]  # order and limit are ignored


async def test_heartbeats_and_the_end_after_stream_max_seconds(
    streaming: httpx.AsyncClient,
) -> None:
    name = await make_queue(streaming)
    started = time.monotonic()
    response = await streaming.get(f"/v1/app1/{name}/stream", headers=APP1)
    took = time.monotonic() - started
    assert SECONDS <= took < SECONDS + 5
    assert events(response) == []
    assert response.content.count(b": heartbeat\n\n") >= 2


async def test_head_answers_the_headers_only(streaming: httpx.AsyncClient) -> None:
    name = await make_queue(streaming)
    started = time.monotonic()
    response = await streaming.head(f"/v1/app1/{name}/stream", headers=APP1)
    assert time.monotonic() - started < SECONDS
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"] == "text/event-stream"


async def test_deleting_the_queue_ends_its_streams(streaming: httpx.AsyncClient) -> None:
    name = await make_queue(streaming)
    opened = asyncio.create_task(streaming.get(f"/v1/app1/{name}/stream", headers=APP1))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await streaming.delete(f"/v1/app1/{name}", headers=APP1)
    response = await opened
    assert time.monotonic() - started < SECONDS - 0.5
    assert events(response) == []


@pytest.mark.parametrize(
    ("params", "headers", "status", "key"),
    [
        ({}, {}, 403, "AccessDenied"),
        ({}, {"Authorization": "Application nope"}, 401, "InvalidApplicationKey"),
        ({"since": "yesterday"}, APP1, 400, "since"),
        ({"since": "0" * 32}, APP1, 400, "InvalidMessageID"),
        ({"partitions": "1,x"}, APP1, 400, "partitions"),
        ({}, {**APP1, "Last-Event-ID": "not-an-id"}, 400, "Last-Event-ID"),
        ({}, {**APP1, "Last-Event-ID": "0" * 32}, 400, "Last-Event-ID"),
    ],
)
async def test_errors_are_json_before_any_event(
    streaming: httpx.AsyncClient,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    key: str,
) -> None:
    name = await make_queue(streaming)
    response = await streaming.get(f"/v1/app1/{name}/stream", params=params, headers=headers)
    assert key in error(response, status)


async def test_unknown_queue_and_cors(streaming: httpx.AsyncClient) -> None:
    assert "InvalidQueueName" in error(
        await streaming.get("/v1/app1/nowhere/stream", headers=APP1), 404
    )
    name = await make_queue(streaming)
    response = await streaming.head(
        f"/v1/app1/{name}/stream", headers={**APP1, "Origin": ALLOWED_ORIGIN}
    )
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_a_public_queue_streams_to_anyone_and_is_counted(
    streaming: httpx.AsyncClient,
) -> None:
    name = await make_queue(streaming, type="public")
    first = await post(streaming, name, "for all")
    response = await streaming.get(f"/v1/app1/{name}/stream", params={"since": first})
    assert bodies(events(response)) == ["for all"]
    metrics = (await streaming.get("/__metrics__")).text
    assert 'route="/v1/{app}/{queue}/stream",status="200"' in metrics
    assert "queuey_open_streams" in metrics


async def test_a_scoped_token_streams_its_partitions_until_it_expires(settings: Settings) -> None:
    """``access_token=`` as an EventSource sends it; no ``partitions``: the token's; the stream
    ends when the token does (here 1 s, before stream_max_seconds)."""
    tuned = dataclasses.replace(
        settings, token_secret=("stream secret",), stream_max_seconds=30.0, stream_heartbeat=0
    )
    async with connect(tuned) as c:
        name = await make_queue(c, partitions=3)
        minted = await c.post(
            f"/v1/app1/{name}/tokens", json={"ttl": 2, "partitions": [2, 3]}, headers=APP1
        )
        token = minted.json()["token"]
        first = await post(c, name, "one", 1)
        await post(c, name, "two", 2)
        await post(c, name, "three", 3)
        url = f"/v1/app1/{name}/stream"
        denied = await c.get(url, params={"access_token": token, "partitions": "1"})
        assert "AccessDenied" in error(denied, 403)
        started = time.monotonic()
        response = await c.get(url, params={"access_token": token, "since": first})
        assert time.monotonic() - started < 10
        assert bodies(events(response)) == ["two", "three"]


async def test_a_stream_counts_as_one_request_for_rate_limits(settings: Settings) -> None:
    """A burst of 4 (at a rate too slow to refill): the queue, a post, one stream (however
    long), one read; then the next stream is refused 429 as JSON, before any event."""
    limits = MappingProxyType({"app1": ApplicationLimits(requests_per_second=0.01, burst=4)})
    tuned = dataclasses.replace(settings, applications=limits, stream_max_seconds=1.0)
    async with connect(tuned) as c:
        name = await make_queue(c)
        first = await post(c, name, "m")
        streamed = await c.get(f"/v1/app1/{name}/stream", params={"since": first}, headers=APP1)
        assert bodies(events(streamed)) == ["m"]
        assert (await c.get(f"/v1/app1/{name}", headers=APP1)).status_code == 200
        refused = await c.get(f"/v1/app1/{name}/stream", headers=APP1)
        assert "TooManyRequests" in error(refused, 429)
