"""Idempotent publishing through HTTP (SPEC §3): ``X-Idempotency-Key`` and ``idempotency_key``.

A message whose key was already used on the queue is answered 201 exactly as
the first time and not stored again, also after the message was deleted or
expired; the request is still checked and validated first, in the contract's
order. The last test races two ``queuey serve`` processes on one SQLite file.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from tests.api_support import JSON_TYPE, error, ok, post_batch, read, read_ids
from tests.conftest import APP1, APP2, Server, make_queue, write_config

HEADER = "X-Idempotency-Key"
#: Every visible ASCII character, and the longest key.
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
LONGEST = "~" * 128


async def send(
    client: httpx.AsyncClient, queue: str, body: bytes, key: str | bytes | None, **headers: str
) -> httpx.Response:
    """POST one message to app1's ``queue`` with this idempotency key (None: no header)."""
    sent: dict[str, Any] = {**APP1, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if key is not None:
        sent[HEADER] = key
    return await client.post(f"/v1/app1/{queue}", content=body, headers=sent)


async def bodies(client: httpx.AsyncClient, queue: str, partitions: str = "1") -> list[str]:
    return sorted(m["body"] for m in await read(client, queue, partitions=partitions))


async def test_a_repeated_key_is_answered_exactly_as_the_first_time(
    client: httpx.AsyncClient,
) -> None:
    queue = await make_queue(client, partitions=3)
    first = await send(client, queue, b"first", "order-1", X_Partition="2")
    (posted,) = ok(first, 201)["messages"]
    assert posted["partition"] == 2
    # Whatever its body, TTL, partition or Content-Type.
    again = await send(
        client, queue, b"other", "order-1", X_Partition="3", X_TTL="60", Content_Type="a/b"
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert await bodies(client, queue, "1,2,3") == ["first"]
    # Keys are compared byte for byte, and only this queue's count.
    other = ok(await send(client, queue, b"case", "ORDER-1"), 201)["messages"][0]
    elsewhere = await make_queue(client)
    there = ok(await send(client, elsewhere, b"there", "order-1"), 201)["messages"][0]
    assert len({posted["key"], other["key"], there["key"]}) == 3


async def test_batch_items_carry_keys_shared_with_the_header(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    single = ok(await send(client, queue, b"single", "k1", X_Partition="1"), 201)["messages"][0]
    posted = await post_batch(
        client,
        queue,
        {"body": "a", "idempotency_key": "k1"},
        {"body": "b", "idempotency_key": "k2", "partition": 2},
        {"body": "c", "partition": 1},
        {"body": "d", "idempotency_key": "k2", "partition": 1},  # the first item wins
        {"body": "e", "idempotency_key": None, "partition": 1},  # null: not given
    )
    assert posted[0] == single
    assert posted[3] == posted[1] and posted[1]["partition"] == 2
    assert len({p["key"] for p in posted}) == 4
    assert await bodies(client, queue, "1,2") == ["b", "c", "e", "single"]
    again = await post_batch(
        client,
        queue,
        {"body": "x", "idempotency_key": "k2"},
        {"body": "y", "idempotency_key": VISIBLE},
    )
    assert again[0] == posted[1]
    repeated = await send(client, queue, b"z", VISIBLE)
    assert ok(repeated, 201)["messages"] == [again[1]]


async def test_an_empty_header_is_not_given(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    one = ok(await send(client, queue, b"one", ""), 201)["messages"][0]
    two = ok(await send(client, queue, b"two", ""), 201)["messages"][0]
    assert one["key"] != two["key"]
    assert await bodies(client, queue) == ["one", "two"]


async def test_the_answer_outlives_the_message(client: httpx.AsyncClient) -> None:
    """Deleted by id or expired, the message is answered as before and not stored again."""
    queue = await make_queue(client)
    deleted = await send(client, queue, b"deleted", "d")
    expiring = await send(client, queue, b"expiring", LONGEST, X_TTL="1")
    gone = ok(deleted, 201)["messages"][0]["key"]
    ok(await client.delete(f"/v1/app1/{queue}/{gone}", headers=APP1))
    await asyncio.sleep(1.3)
    assert await read(client, queue) == []
    for key, first in (("d", deleted), (LONGEST, expiring)):
        again = await send(client, queue, b"back?", key)
        assert again.status_code == 201
        assert again.json() == first.json()
    ids = ",".join(ok(r, 201)["messages"][0]["key"] for r in (deleted, expiring))
    assert await read_ids(client, queue, ids) == []
    assert await read(client, queue) == []


def row(headers: dict[str, Any], body: bytes, expected: dict[str, Any], id: str) -> Any:
    return pytest.param(headers, body, expected, id=id)


BAD_KEY = ANY
INVALID = [
    row({HEADER: "x" * 129}, b"m", {"idempotency_key": BAD_KEY}, "header-129-chars"),
    row({HEADER: "a b"}, b"m", {"idempotency_key": BAD_KEY}, "header-space"),
    row({HEADER: "clé".encode()}, b"m", {"idempotency_key": BAD_KEY}, "header-not-ascii"),
    row(
        {HEADER: "a b", "X-TTL": "0"},
        b"",
        {"idempotency_key": BAD_KEY, "ttl": "0 is less than minimum value 1", "body": "Required"},
        "header-with-other-fields",
    ),
    row(
        JSON_TYPE,
        b'{"messages": [{"body": "a", "idempotency_key": "%s"}, {"body": "b",'
        b' "idempotency_key": ""}, {"body": "c", "idempotency_key": 7}, {"body": "d",'
        b' "idempotency_key": "a\\tb"}, {"body": "e", "idempotency_key": "\\u00fc"},'
        b' {"body": "f", "idempotency_key": "ok", "ttl": "x"}]}' % (b"x" * 129),
        {
            "0.idempotency_key": BAD_KEY,
            "1.idempotency_key": BAD_KEY,
            "2.idempotency_key": BAD_KEY,
            "3.idempotency_key": BAD_KEY,
            "4.idempotency_key": BAD_KEY,
            "5.ttl": '"x" is not a number',
        },
        "batch",
    ),
]


@pytest.mark.parametrize(("headers", "body", "expected"), INVALID)
async def test_invalid_keys_are_400_and_store_nothing(
    client: httpx.AsyncClient, headers: dict[str, Any], body: bytes, expected: dict[str, Any]
) -> None:
    queue = await make_queue(client, partitions=2)
    response = await client.post(f"/v1/app1/{queue}", content=body, headers={**APP1, **headers})
    assert error(response, 400) == expected
    messages = error(response, 400)
    assert all("idempotency key" in m for k, m in messages.items() if "idempotency" in k)
    assert await read(client, queue, partitions="1,2") == []
    # A refused request uses no key.
    ok(await send(client, queue, b"now", "ok"), 201)
    assert await bodies(client, queue, "1,2") == ["now"]


async def test_checks_run_in_the_contracts_order(client: httpx.AsyncClient) -> None:
    """401, 404, 403, 413 and 400 come before a key is looked at, known keys included."""
    queue = await make_queue(client)
    first = ok(await send(client, queue, b"first", "k"), 201)
    path = f"/v1/app1/{queue}"
    bad = {HEADER: "a b"}
    unknown = {"Authorization": "Application nope", **bad}
    assert "InvalidApplicationKey" in error(
        await client.post(path, content=b"m", headers=unknown), 401
    )
    assert "NotFound" in error(
        await client.post("/v1/nope/q", content=b"m", headers={**APP1, **bad}), 404
    )
    missing = await client.post("/v1/app1/missing", content=b"m", headers={**APP1, HEADER: "k"})
    assert "InvalidQueueName" in error(missing, 404)
    for headers in ({**APP2, HEADER: "k"}, {HEADER: "k"}):  # another application, nobody
        assert "AccessDenied" in error(await client.post(path, content=b"m", headers=headers), 403)
    too_big = await send(client, queue, b"x" * 2000, "k")
    assert "PayloadTooLarge" in error(too_big, 413)
    assert error(await send(client, queue, b"m", "k", X_TTL="0"), 400) == {
        "ttl": "0 is less than minimum value 1"
    }
    assert error(await send(client, queue, b"", "k"), 400) == {"body": "Required"}
    again = await send(client, queue, b"m", "k")
    assert again.status_code == 201 and again.json() == first
    assert await bodies(client, queue) == ["first"]


# -- two server processes on one SQLite file ----------------------------------------


def test_two_servers_on_one_file_store_each_key_once(tmp_path: Path, serve: type[Server]) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    servers = [serve(config).start(), serve(config).start()]
    with httpx.Client(headers=APP1, timeout=30) as http:
        created = http.post(f"{servers[0].url}/v1/app1", json={"queue_name": "q", "partitions": 2})
        assert created.status_code == 201, created.text
    keys, senders = 10, 8
    answers: dict[str, list[Any]] = {f"k{j}": [] for j in range(keys)}
    failures: list[str] = []
    start = threading.Barrier(senders)

    def sender(n: int) -> None:
        url = f"{servers[n % 2].url}/v1/app1/q"
        with httpx.Client(headers=APP1, timeout=30) as http:
            start.wait()
            for j in range(keys):
                response = http.post(url, content=f"{n}-{j}".encode(), headers={HEADER: f"k{j}"})
                if response.status_code != 201:
                    failures.append(response.text)
                else:
                    answers[f"k{j}"].append(response.json()["messages"][0])

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    for key, found in answers.items():
        assert len(found) == senders and all(a == found[0] for a in found), key
    with httpx.Client(headers=APP1, timeout=30) as http:
        stored = http.get(f"{servers[1].url}/v1/app1/q", params={"partitions": "1,2"}).json()
    assert sorted(m["message_id"] for m in stored["messages"]) == sorted(
        found[0]["key"] for found in answers.values()
    )
