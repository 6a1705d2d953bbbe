"""Messages through HTTP: posting, range reads, ids and timestamps, TTL, by-id access."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.api_support import (
    UNIX_EPOCH_TICKS,
    error,
    ok,
    order_key,
    post,
    post_batch,
    read,
    read_ids,
    tick_timestamp,
)
from tests.conftest import APP1, make_queue

ID = re.compile(r"[0-9a-f]{32}")
TIMESTAMP = re.compile(r"\d+\.\d{7}")


def uuid1_at(unix_seconds: int) -> str:
    """A version-1 UUID hex at a given time, with a random clock sequence and node."""
    value = uuid.uuid1()
    ticks = unix_seconds * 10_000_000 + UNIX_EPOCH_TICKS
    fields = (ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000)
    head = (fields[0] << 32) | (fields[1] << 16) | fields[2]
    return f"{head:016x}{value.hex[16:]}"


# -- posting ------------------------------------------------------------------


async def test_post_one_message(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=3)
    response = await client.post(
        f"/v1/app1/{name}",
        content="héllo, wörld".encode(),
        headers={**APP1, "Content-Type": "application/xml; charset=utf-8", "X-Partition": "2"},
    )
    (posted,) = ok(response, 201)["messages"]
    assert set(posted) == {"key", "timestamp", "partition"}
    assert posted["partition"] == 2
    assert await read(client, name, partitions=2) == [
        {
            "message_id": posted["key"],
            "timestamp": posted["timestamp"],
            "body": "héllo, wörld",
            "partition": 2,
            "content_type": "application/xml; charset=utf-8",
        }
    ]


async def test_post_without_content_type_is_text_plain(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    await post(client, name, "{not json")
    (message,) = await read(client, name)
    assert (message["body"], message["content_type"]) == ("{not json", "text/plain")


async def test_post_without_partition_spreads_randomly(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=4)
    singles = [(await post(client, name))["partition"] for _ in range(30)]
    batch = [m["partition"] for m in await post_batch(client, name, *[{"body": "b"}] * 100)]
    for partitions in (singles, batch):
        assert set(partitions) <= {1, 2, 3, 4} and len(set(partitions)) > 1
    counts = [len(await read(client, name, partitions=p)) for p in (1, 2, 3, 4)]
    assert sum(counts) == 130


async def test_post_batch(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    items = [
        {"body": "one", "partition": 2, "ttl": 60, "content_type": "application/json"},
        {"body": "two", "partition": "1", "ttl": "3600"},
        {"body": "three", "partition": 2, "content_type": None},
    ]
    # X-TTL and X-Partition do not apply to batches: these values would be invalid.
    response = await client.post(
        f"/v1/app1/{name}",
        json={"messages": items},
        headers={**APP1, "X-TTL": "0", "X-Partition": "9"},
    )
    posted = ok(response, 201)["messages"]
    assert [m["partition"] for m in posted] == [2, 1, 2]
    found = await read(client, name, partitions="1,2")
    assert [(m["message_id"], m["body"], m["content_type"]) for m in found] == [
        (posted[1]["key"], "two", "text/plain"),
        (posted[0]["key"], "one", "application/json"),
        (posted[2]["key"], "three", "text/plain"),
    ]


async def test_batch_with_charset_and_of_1000(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    document = {"messages": [{"body": f"m{i}"} for i in range(1000)]}
    response = await client.post(
        f"/v1/app1/{name}",
        content=httpx.Request("POST", "/", json=document).content,
        headers={**APP1, "Content-Type": "Application/JSON; charset=utf-8"},
    )
    posted = ok(response, 201)["messages"]
    assert len(posted) == 1000
    found = await read(client, name)
    assert [m["message_id"] for m in found] == [m["key"] for m in posted]
    assert [m["body"] for m in found] == [f"m{i}" for i in range(1000)]
    # One more: the default limit is the page cap of 1000.
    last = await post(client, name, "m1000")
    assert [m["body"] for m in await read(client, name)] == [f"m{i}" for i in range(1000)]
    newest = await read(client, name, order="descending")
    assert (len(newest), newest[0]["message_id"]) == (1000, last["key"])


# -- ids and timestamps -------------------------------------------------------


async def test_ids_and_timestamps(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    before = time.time()
    posted = [await post(client, name, x_partition="1") for _ in range(3)]
    posted += await post_batch(client, name, *[{"body": "b", "partition": 2}] * 5)
    posted.append(await post(client, name, x_partition="2"))
    after = time.time()
    for message in posted:
        assert ID.fullmatch(message["key"])
        assert uuid.UUID(hex=message["key"]).version == 1
        assert uuid.UUID(hex=message["key"]).variant == uuid.RFC_4122
        assert isinstance(message["timestamp"], str)
        assert TIMESTAMP.fullmatch(message["timestamp"])
        assert message["timestamp"] == tick_timestamp(message["key"])
        assert before - 1 <= float(message["timestamp"]) <= after + 1
    keys = [order_key(m["key"]) for m in posted]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # strictly increasing
    found = await read(client, name, partitions="1,2")
    assert [(m["message_id"], m["timestamp"]) for m in found] == [
        (m["key"], m["timestamp"]) for m in posted
    ]


# -- range reads --------------------------------------------------------------


@pytest.fixture
async def five(client: httpx.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    """A queue with five messages in partition 1, posted one by one."""
    name = await make_queue(client)
    return name, [await post(client, name, f"m{i}") for i in range(5)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [0, 1, 2, 3, 4]),
        ({"since": "id:2"}, [2, 3, 4]),  # an id: inclusive
        ({"since": "ts:2"}, [2, 3, 4]),  # a timestamp: inclusive
        ({"since": "ts:2+0000"}, [2, 3, 4]),  # zeros beyond the 7th digit change nothing
        ({"since": "ts:2+1"}, [3, 4]),  # beyond the 7th digit rounds up to the next tick
        ({"since": "ts:2+00000000001"}, [3, 4]),
        ({"since": "ts:4+1"}, []),
        ({"since": "0"}, [0, 1, 2, 3, 4]),
        ({"since": "0.5"}, [0, 1, 2, 3, 4]),
        ({"since": ".5"}, [0, 1, 2, 3, 4]),
        ({"since": "99999999999"}, []),
        ({"since": "ID:3"}, [3, 4]),  # ids in upper case too
        ({"limit": 2}, [0, 1]),
        ({"limit": 2, "since": "id:1"}, [1, 2]),
        ({"order": "descending"}, [4, 3, 2, 1, 0]),
        ({"order": "descending", "limit": 2}, [4, 3]),
        # descending with since: at or before it, newest first (paging backwards)
        ({"order": "descending", "limit": 2, "since": "id:3"}, [3, 2]),
        ({"order": "descending", "limit": 10, "since": "id:1"}, [1, 0]),
        ({"order": "descending", "since": "id:0"}, [0]),
        ({"order": "descending", "since": "ts:2"}, [2, 1, 0]),  # a timestamp: inclusive
        ({"order": "descending", "since": "ts:2+9"}, [2, 1, 0]),  # extra digits round down
        ({"order": "descending", "since": "0"}, []),
        ({"order": "descending", "since": "99999999999"}, [4, 3, 2, 1, 0]),
        ({"order": "descending", "since": "9" * 5000}, [4, 3, 2, 1, 0]),
        ({"since": "9" * 5000}, []),
        ({"order": "ascending", "limit": 1000}, [0, 1, 2, 3, 4]),
        ({"since": "", "limit": "", "order": "", "partitions": ""}, [0, 1, 2, 3, 4]),
    ],
)
async def test_range_read(
    client: httpx.AsyncClient,
    five: tuple[str, list[dict[str, Any]]],
    params: dict[str, Any],
    expected: list[int],
) -> None:
    name, posted = five
    since = str(params.get("since", ""))
    if since.lower().startswith(("id:", "ts:")):
        kind, _, rest = since.partition(":")
        index, _, digits = rest.partition("+")
        message = posted[int(index)]
        value = message["key"] if kind.lower() == "id" else message["timestamp"] + digits
        params = {**params, "since": value.upper() if kind == "ID" else value}
    found = await read(client, name, **params)
    assert [m["message_id"] for m in found] == [posted[i]["key"] for i in expected]
    assert [m["body"] for m in found] == [f"m{i}" for i in expected]


async def test_since_timestamp_compares_ticks_exactly(client: httpx.AsyncClient) -> None:
    """A message's own timestamp includes it; one tick later excludes it (no float rounding)."""
    name = await make_queue(client)
    posted = [await post(client, name) for _ in range(3)]
    for message in posted:
        since = Decimal(message["timestamp"])
        later = str(since + Decimal("0.0000001"))
        included = [m["message_id"] for m in await read(client, name, since=str(since))]
        excluded = [m["message_id"] for m in await read(client, name, since=later)]
        assert included[0] == message["key"]
        assert message["key"] not in excluded
        assert included[1:] == excluded


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["p1-0", "p1-1", "p1-2"]),
        ({"partitions": "2"}, ["p2-0", "p2-1"]),
        ({"partitions": "2,1"}, ["p2-0", "p2-1", "p1-0", "p1-1", "p1-2"]),
        ({"partitions": "1,3,2"}, ["p1-0", "p1-1", "p1-2", "p2-0", "p2-1"]),
        ({"partitions": "2,1", "limit": 1}, ["p2-0", "p1-0"]),
        ({"partitions": "2,1,2,1", "limit": 2}, ["p2-0", "p2-1", "p1-0", "p1-1"]),
        ({"partitions": "1,2", "order": "descending", "limit": 1}, ["p1-2", "p2-1"]),
        ({"partitions": " 2 , ,1"}, ["p2-0", "p2-1", "p1-0", "p1-1", "p1-2"]),
        # partitions the queue lacks have no messages, as in the original
        ({"partitions": "0,2,4,99"}, ["p2-0", "p2-1"]),
        ({"partitions": "4"}, []),
        ({"partitions": "9" * 5000 + ",1"}, ["p1-0", "p1-1", "p1-2"]),
        ({"partitions": "002"}, ["p2-0", "p2-1"]),
    ],
)
async def test_range_read_partitions(
    client: httpx.AsyncClient, params: dict[str, Any], expected: list[str]
) -> None:
    name = await make_queue(client, partitions=3)
    for body, partition in [("p1-0", 1), ("p2-0", 2), ("p1-1", 1), ("p2-1", 2), ("p1-2", 1)]:
        await post(client, name, body, x_partition=str(partition))
    found = await read(client, name, **params)
    assert [m["body"] for m in found] == expected
    assert [m["partition"] for m in found] == [int(b[1]) for b in expected]


async def test_since_id_applies_to_every_partition(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    posted = [await post(client, name, str(i), x_partition=str(1 + i % 2)) for i in range(6)]
    found = await read(client, name, partitions="1,2", since=posted[2]["key"])
    assert [m["body"] for m in found] == ["2", "4", "3", "5"]


# -- TTL ----------------------------------------------------------------------


async def test_empty_batch_stores_nothing(client: httpx.AsyncClient) -> None:
    """As the original: {"messages": []} is a 201 with an empty list."""
    name = await make_queue(client)
    response = await client.post(f"/v1/app1/{name}", json={"messages": []}, headers=APP1)
    assert ok(response, 201) == {"status": "ok", "messages": []}
    assert await read(client, name) == []


async def test_expired_messages_disappear(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    short = await post(client, name, "short", x_ttl="1")
    (batch_short,) = await post_batch(client, name, {"body": "batch short", "ttl": 1})
    kept = await post(client, name, "kept", x_ttl="60")
    overwritten = await post(client, name, "overwritten", x_ttl="60")
    extended = await post(client, name, "extended", x_ttl="1")
    # Overwriting restarts the expiry with the new X-TTL, shorter or longer.
    for message, ttl in ((overwritten, "1"), (extended, "60")):
        url = f"/v1/app1/{name}/{message['key']}"
        ok(await client.put(url, content=b"again", headers={**APP1, "X-TTL": ttl}))
    assert len(await read(client, name)) == 5

    await asyncio.sleep(1.2)
    left = [kept["key"], extended["key"]]
    assert [m["message_id"] for m in await read(client, name)] == left
    ids = ",".join(m["key"] for m in (short, batch_short, kept, overwritten, extended))
    assert [m["message_id"] for m in await read_ids(client, name, ids)] == left
    listing = await client.get("/v1/app1", params={"include_count": "true"}, headers=APP1)
    assert [(q["queue_name"], q["count"]) for q in ok(listing)["queues"]] == [(name, 2)]


# -- by id --------------------------------------------------------------------


@pytest.fixture
async def spread(client: httpx.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    """A queue of two partitions with messages m0, m2 in partition 1 and m1, m3 in 2."""
    name = await make_queue(client, partitions=2)
    return name, [await post(client, name, f"m{i}", x_partition=str(1 + i % 2)) for i in range(4)]


def ids(posted: list[dict[str, Any]], spec: str) -> str:
    """Expand ``spec``: ``{0}`` is message 0's id, ``{P0}`` the same with its partition prefix."""
    values = {f"P{i}": f"{m['partition']}:{m['key']}" for i, m in enumerate(posted)}
    values |= {f"E{i}": f"{m['partition']}%3A{m['key']}" for i, m in enumerate(posted)}
    values |= {f"U{i}": m["key"].upper() for i, m in enumerate(posted)}
    values["missing"] = uuid.uuid1().hex
    return spec.format(*[m["key"] for m in posted], **values)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{0}", [0]),
        ("{2},{0}", [2, 0]),  # in the order asked
        ("{P1}", [1]),
        ("{E1}", [1]),  # the colon URL-encoded
        ("2%3a{1}", [1]),
        ("{P3},{P0},{E1}", [3, 0, 1]),
        ("1:{0}", [0]),
        ("{1}", []),  # without a prefix: partition 1, where message 1 is not
        ("2:{0}", []),
        ("3:{1},9:{1},0:{0}", []),  # partitions the queue does not have: left out
        (",{0},,{2},", [0, 2]),  # empty items skipped
        ("{0},{0},1:{0},{U0}", [0]),  # duplicates once, either case
        ("{missing},{0},{missing}", [0]),
        ("{missing}", []),
        ("{U2}", [2]),
    ],
)
async def test_get_by_ids(
    client: httpx.AsyncClient,
    spread: tuple[str, list[dict[str, Any]]],
    spec: str,
    expected: list[int],
) -> None:
    name, posted = spread
    found = await read_ids(client, name, ids(posted, spec))
    assert found == [
        {
            "message_id": posted[i]["key"],
            "timestamp": posted[i]["timestamp"],
            "body": f"m{i}",
            "partition": posted[i]["partition"],
            "content_type": "text/plain",
        }
        for i in expected
    ]


@pytest.mark.parametrize(
    ("spec", "deleted"),
    [
        ("{0}", [0]),
        ("{P1},{E3}", [1, 3]),
        ("{1},2:{0},{missing},5:{1}", []),  # absent ones are no error
        (",{U2},,{2},1:{2}", [2]),
    ],
)
async def test_delete_by_ids(
    client: httpx.AsyncClient,
    spread: tuple[str, list[dict[str, Any]]],
    spec: str,
    deleted: list[int],
) -> None:
    name, posted = spread
    response = await client.delete(f"/v1/app1/{name}/{ids(posted, spec)}", headers=APP1)
    assert ok(response) == {"status": "ok"}
    left = await read(client, name, partitions="1,2")
    assert sorted(m["body"] for m in left) == [f"m{i}" for i in range(4) if i not in deleted]


async def test_put_overwrites_by_id(
    client: httpx.AsyncClient, spread: tuple[str, list[dict[str, Any]]]
) -> None:
    name, posted = spread
    response = await client.put(
        f"/v1/app1/{name}/{ids(posted, '{0},{E1},{missing}')}",
        content=b"nouveau",
        headers={**APP1, "Content-Type": "text/markdown"},
    )
    assert ok(response) == {"status": "ok"}
    found = await read(client, name, partitions="1,2")
    changed = {m["message_id"]: (m["body"], m["content_type"]) for m in found}
    assert changed[posted[0]["key"]] == ("nouveau", "text/markdown")
    assert changed[posted[1]["key"]] == ("nouveau", "text/markdown")
    assert changed[posted[2]["key"]] == ("m2", "text/plain")
    # Keys, timestamps and partitions stay; the missing id was created in partition 1.
    assert len(found) == 5
    for message in posted:
        assert message["key"] in changed


async def test_put_creates_with_the_given_id(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    later = await post(client, name, "posted", x_partition="2")
    old = uuid1_at(1323976306)  # Dec 2011: before anything posted now
    fresh = uuid.uuid1().hex
    for target in (f"2:{old}", fresh.upper()):  # either case in, lower case out
        response = await client.put(f"/v1/app1/{name}/{target}", content=b"put", headers=APP1)
        assert ok(response) == {"status": "ok"}

    (created,) = await read_ids(client, name, f"2:{old}")
    assert created == {
        "message_id": old,
        "timestamp": tick_timestamp(old),
        "body": "put",
        "partition": 2,
        "content_type": "text/plain",
    }
    assert created["timestamp"].startswith("1323976306.")
    # It takes its place by its timestamp, ahead of the message posted earlier.
    assert [m["message_id"] for m in await read(client, name, partitions=2)] == [
        old,
        later["key"],
    ]
    (made,) = await read(client, name, partitions=1)
    assert (made["message_id"], made["timestamp"]) == (fresh, tick_timestamp(fresh))


async def test_put_to_missing_partition_stores_nothing(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    target = f"1:{uuid.uuid1().hex},3:{uuid.uuid1().hex}"
    response = await client.put(f"/v1/app1/{name}/{target}", content=b"x", headers=APP1)
    assert error(response, 400) == {"partition": "3 is greater than maximum value 2"}
    assert await read(client, name, partitions="1,2") == []
