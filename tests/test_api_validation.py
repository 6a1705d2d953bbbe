"""Every bad input of SPEC.md through HTTP: its status, its exact error, and nothing stored.

Each row is one request against app1's queue ``vq`` (two partitions) and the
``error_msg`` it must get; ``ANY`` stands for free-text messages. After each
one the test proves the request changed nothing: the queue list with details
and counts, the messages of both partitions and the id the rows write to.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from tests.api_support import JSON_TYPE, error, ok, post, read, read_ids
from tests.conftest import APP1, make_queue

Q = "/v1/app1/vq"
ID = "6b63a18fea0011f18b4e71c5f9abafa9"  # a version-1 UUID no row stores
UUID4 = uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427").hex
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TEXT = {"Content-Type": "text/plain"}
TOO_BIG = {"PayloadTooLarge": ANY}
BAD_ID = {"InvalidMessageID": ANY}
BAD_JSON = {"InvalidJSON": ANY}
REQUIRED = "Required"
#: The id above with other variant bits (byte 8 = 0x0b, 0xcb, 0xeb), and one of 1969.
NOT_RFC4122 = [ID[:16] + b + ID[17:] for b in "0ce"]
BEFORE_1970 = "12e8a9801dd211b28b4e71c5f9abafa9"  # 1969-12-31T23:59:59Z


class Shaped(str):
    """A message that must match this regular expression (shortened numbers vary)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(self, other) is not None

    __hash__ = str.__hash__


def js(document: Any) -> bytes:
    return json.dumps(document).encode()


def batch(*items: Any) -> bytes:
    return js({"messages": list(items)})


def row(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    expected: dict[str, Any],
    id: str,
) -> Any:
    return pytest.param(method, path, headers, body, status, expected, id=id)


NUMBER = [
    # (value, message) for a field with bounds 1..2
    ("fred", '"fred" is not a number'),
    ("2.5", '"2.5" is not a number'),
    ("0", "0 is less than minimum value 1"),
    ("-4", "-4 is less than minimum value 1"),
    ("3", "3 is greater than maximum value 2"),
]

QUEUE_ROWS = [
    row("POST", "/v1/app1", JSON_TYPE, js({"partitions": "fred"}), 400,
        {"partitions": '"fred" is not a number'}, "create-partitions-nan"),
    row("POST", "/v1/app1", JSON_TYPE, js({"partitions": 2.5}), 400,
        {"partitions": '"2.5" is not a number'}, "create-partitions-float"),
    row("POST", "/v1/app1", JSON_TYPE, js({"partitions": 0}), 400,
        {"partitions": "0 is less than minimum value 1"}, "create-partitions-0"),
    row("POST", "/v1/app1", JSON_TYPE, js({"partitions": "201"}), 400,
        {"partitions": "201 is greater than maximum value 200"}, "create-partitions-201"),
    row("POST", "/v1/app1", JSON_TYPE, js({"type": "x"}), 400,
        {"type": '"x" is not one of public, user'}, "create-type"),
    row("POST", "/v1/app1", JSON_TYPE, js({"consistency": "x"}), 400,
        {"consistency": '"x" is not one of weak, strong, very_strong'}, "create-consistency"),
    row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": "a b"}), 400,
        {"queue_name": ANY}, "create-name-space"),
    row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": "q" * 51}), 400,
        {"queue_name": ANY}, "create-name-long"),
    row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": "a/b"}), 400,
        {"queue_name": ANY}, "create-name-slash"),
    row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": 5}), 400,
        {"queue_name": ANY}, "create-name-number"),
    *[
        row("POST", "/v1/app1", JSON_TYPE, js({"principles": p}), 400,
            {"principles": ANY}, f"create-principles-{i}")
        for i, p in enumerate(
            ["fred", "app:", "app:a-b", "bid:nobody", "bid:a@b@c", "bid:a b@c", "user:x",
             "app:app2,bid:", [1], {"app": "app2"}, "app:app2;bid:a@b.c"]
        )
    ],
    row("POST", "/v1/app1", FORM,
        b"queue_name=a%20b&partitions=fred&type=x&consistency=y&principles=app%3A", 400,
        {
            "queue_name": ANY,
            "partitions": '"fred" is not a number',
            "type": '"x" is not one of public, user',
            "consistency": '"y" is not one of weak, strong, very_strong',
            "principles": ANY,
        }, "create-form-all-together"),
    row("POST", "/v1/app1", {}, b"partitions=0&type=", 400,
        {"partitions": "0 is less than minimum value 1"}, "create-form-no-content-type"),
    row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": "vq", "type": "x"}), 400,
        {"type": '"x" is not one of public, user'}, "create-existing-validated-first"),
    row("POST", "/v1/app1", JSON_TYPE, b"{", 400, BAD_JSON, "create-malformed"),
    row("POST", "/v1/app1", JSON_TYPE, b"[1]", 400, BAD_JSON, "create-not-object"),
    row("POST", "/v1/app1", JSON_TYPE, b"\xff", 400, BAD_JSON, "create-not-utf8"),
    row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": "x" * 70_000}), 413, TOO_BIG,
        "create-too-large"),
    row("POST", "/v1/app1", FORM, b"partitions=0&x=" + b"y" * 70_000, 413, TOO_BIG,
        "create-too-large-before-400"),
    # update
    row("PUT", Q, JSON_TYPE, js({"partitions": 1}), 400, {"InvalidUpdate": ANY}, "update-shrink"),
    row("PUT", Q, FORM, b"queue_name=other", 400, {"InvalidUpdate": ANY}, "update-rename"),
    row("PUT", Q, JSON_TYPE, js({"partitions": "fred"}), 400,
        {"partitions": '"fred" is not a number'}, "update-partitions-nan"),
    row("PUT", Q, JSON_TYPE, js({"partitions": 201}), 400,
        {"partitions": "201 is greater than maximum value 200"}, "update-partitions-201"),
    row("PUT", Q, JSON_TYPE, js({"type": "x", "consistency": "y", "principles": "app:"}), 400,
        {
            "type": '"x" is not one of public, user',
            "consistency": '"y" is not one of weak, strong, very_strong',
            "principles": ANY,
        }, "update-all-together"),
    row("PUT", Q, JSON_TYPE, b"{", 400, BAD_JSON, "update-malformed"),
    row("PUT", Q, JSON_TYPE, b"null", 400, BAD_JSON, "update-not-object"),
    row("PUT", Q, JSON_TYPE, js({"principles": "x" * 70_000}), 413, TOO_BIG, "update-too-large"),
    # list
    row("GET", "/v1/app1?limit=fred", {}, None, 400,
        {"limit": '"fred" is not a number'}, "list-limit-nan"),
    row("GET", "/v1/app1?limit=0", {}, None, 400,
        {"limit": "0 is less than minimum value 1"}, "list-limit-0"),
    row("GET", "/v1/app1?limit=1001", {}, None, 400,
        {"limit": "1001 is greater than maximum value 1000"}, "list-limit-1001"),
    row("GET", "/v1/app1?details=maybe", {}, None, 400,
        {"details": '"maybe" is not one of true, false'}, "list-details"),
    row("GET", "/v1/app1?limit=-1&details=2&include_count=x", {}, None, 400,
        {
            "limit": "-1 is less than minimum value 1",
            "details": '"2" is not one of true, false',
            "include_count": '"x" is not one of true, false',
        }, "list-all-together"),
]  # fmt: skip

POST_ROWS = [
    row("POST", Q, {}, b"", 400, {"body": REQUIRED}, "post-empty"),
    row("POST", Q, TEXT, b"", 400, {"body": REQUIRED}, "post-empty-text"),
    row("POST", Q, {}, b"\xff\xfe", 400, {"body": ANY}, "post-not-utf8"),
    *[
        row("POST", Q, {"X-TTL": value}, b"x", 400, {"ttl": message}, f"post-ttl-{value}")
        for value, message in [
            ("fred", '"fred" is not a number'),
            ("1.5", '"1.5" is not a number'),
            ("0", "0 is less than minimum value 1"),
            ("33554433", "33554433 is greater than maximum value 33554432"),
        ]
    ],
    *[
        row("POST", Q, {"X-Partition": value}, b"x", 400, {"partition": message},
            f"post-partition-{value}")
        for value, message in NUMBER
    ],
    row("POST", Q, {"X-TTL": "-1", "X-Partition": "3"}, b"", 400,
        {
            "body": REQUIRED,
            "ttl": "-1 is less than minimum value 1",
            "partition": "3 is greater than maximum value 2",
        }, "post-all-together"),
    row("POST", Q, {}, b"x" * 1025, 413, TOO_BIG, "post-message-too-large"),
    row("POST", Q, TEXT, "é".encode() * 513, 413, TOO_BIG, "post-message-too-large-utf8"),
    row("POST", Q, {"X-TTL": "0", "X-Partition": "x"}, b"\xff" * 2000, 413, TOO_BIG,
        "post-too-large-before-400"),
    row("POST", Q, {}, b"x" * 70_000, 413, TOO_BIG, "post-request-too-large"),
    # batches
    row("POST", Q, JSON_TYPE, js({}), 400, {"messages": REQUIRED}, "batch-no-messages"),
    row("POST", Q, JSON_TYPE, js({"messages": None}), 400, {"messages": REQUIRED}, "batch-null"),
    row("POST", Q, JSON_TYPE, js({"messages": "x"}), 400, {"messages": ANY}, "batch-not-list"),
    row("POST", Q, JSON_TYPE, batch(*[{"body": "x"}] * 1001), 400,
        {"messages": "1001 is greater than maximum value 1000"}, "batch-1001"),
    row("POST", Q, JSON_TYPE, batch({"body": "a"}, 1), 400, {"1": ANY}, "batch-item-not-object"),
    row("POST", Q, JSON_TYPE, batch({}), 400, {"0.body": REQUIRED}, "batch-body-missing"),
    row("POST", Q, JSON_TYPE, batch({"body": ""}), 400, {"0.body": REQUIRED}, "batch-body-empty"),
    row("POST", Q, JSON_TYPE, batch({"body": 5}), 400, {"0.body": ANY}, "batch-body-number"),
    row("POST", Q, JSON_TYPE, batch({"body": "a", "content_type": 5}), 400,
        {"0.content_type": ANY}, "batch-content-type"),
    *[
        row("POST", Q, JSON_TYPE, batch({"body": "a"}, {"body": "b", "partition": value}), 400,
            {"1.partition": message}, f"batch-partition-{value}")
        for value, message in NUMBER
    ],
    row("POST", Q, JSON_TYPE, batch({"body": "a", "ttl": "fred"}), 400,
        {"0.ttl": '"fred" is not a number'}, "batch-ttl-nan"),
    row("POST", Q, JSON_TYPE, batch({"body": "a", "ttl": 0}), 400,
        {"0.ttl": "0 is less than minimum value 1"}, "batch-ttl-0"),
    row("POST", Q, JSON_TYPE, batch({"body": "a", "ttl": 2**25 + 1}), 400,
        {"0.ttl": "33554433 is greater than maximum value 33554432"}, "batch-ttl-big"),
    row("POST", Q, JSON_TYPE,
        batch({"body": ""}, {"body": "ok"}, {"body": "a", "ttl": 0, "partition": "x"}), 400,
        {
            "0.body": REQUIRED,
            "2.ttl": "0 is less than minimum value 1",
            "2.partition": '"x" is not a number',
        }, "batch-all-together"),
    row("POST", Q, JSON_TYPE, b'{"messages": [', 400, BAD_JSON, "batch-malformed"),
    row("POST", Q, JSON_TYPE, b"[]", 400, BAD_JSON, "batch-not-object"),
    row("POST", Q, {"Content-Type": "application/json; charset=utf-8"},
        b'{"messages": [{"body": "\xff"}]}', 400, BAD_JSON, "batch-not-utf8"),
    row("POST", Q, JSON_TYPE, batch({"body": ""}, {"body": "x" * 1025}), 413, TOO_BIG,
        "batch-message-too-large-before-400"),
    row("POST", Q, JSON_TYPE, batch({"body": "é" * 513}), 413, TOO_BIG,
        "batch-message-too-large-utf8"),
    row("POST", Q, JSON_TYPE, batch(*[{"body": "x" * 1000}] * 70), 413, TOO_BIG,
        "batch-request-too-large"),
]  # fmt: skip

READ_ROWS = [
    row("GET", f"{Q}?limit=fred", {}, None, 400, {"limit": '"fred" is not a number'},
        "read-limit-nan"),
    row("GET", f"{Q}?limit=0", {}, None, 400, {"limit": "0 is less than minimum value 1"},
        "read-limit-0"),
    row("GET", f"{Q}?limit=1001", {}, None, 400,
        {"limit": "1001 is greater than maximum value 1000"}, "read-limit-1001"),
    row("GET", f"{Q}?order=x", {}, None, 400,
        {"order": '"x" is not one of descending, ascending'}, "read-order"),
    *[
        row("GET", f"{Q}?partitions=1,{value}", {}, None, 400, {"partitions": message},
            f"read-partitions-{value}")
        for value, message in [
            ("fred", '"fred" is not a number'),
            ("2.5", '"2.5" is not a number'),
            ("-4", "-4 is less than minimum value 0"),
            ("٣", '"٣" is not a number'),
            ("-" + "9" * 5000, f"-{'9' * 20}... is less than minimum value 0"),
        ]
    ],
    *[
        row("GET", f"{Q}?since={value}", {}, None, 400, {"since": ANY}, f"read-since-{value}")
        for value in ["fred", "-1", "1e9", "1.2.3", "+5", "0x10", ID[:31] + "g", ID[:31],
                      str(uuid.UUID(ID))]
    ],
    row("GET", f"{Q}?since={UUID4}", {}, None, 400, BAD_ID, "read-since-uuid4"),
    *[
        row("GET", f"{Q}?since={bad}", {}, None, 400, BAD_ID, f"read-since-{bad}")
        for bad in [*NOT_RFC4122, BEFORE_1970]
    ],
    row("GET", f"{Q}?since=٣", {}, None, 400, {"since": ANY}, "read-since-arabic-digit"),
    row("GET", f"{Q}?limit=0&order=up&partitions=x&since=fred", {}, None, 400,
        {
            "limit": "0 is less than minimum value 1",
            "order": '"up" is not one of descending, ascending',
            "partitions": '"x" is not a number',
            "since": ANY,
        }, "read-all-together"),
]  # fmt: skip

BAD_IDS = ["zzz", f"x:{ID}", f"1.5:{ID}", UUID4, ID[:31], ID + "0", f"٣:{ID}",
           str(uuid.UUID(ID)), f"{ID},zzz", f"1:{ID},{UUID4}", f":{ID}", f"1:2:{ID}",
           *NOT_RFC4122, BEFORE_1970]  # fmt: skip

BY_ID_ROWS = [
    *[row("GET", f"{Q}/{ids}", {}, None, 400, BAD_ID, f"get-{ids}") for ids in BAD_IDS],
    *[row("DELETE", f"{Q}/{ids}", {}, None, 400, BAD_ID, f"delete-{ids}") for ids in BAD_IDS],
    *[row("PUT", f"{Q}/{ids}", {}, b"x", 400, BAD_ID, f"put-{ids}") for ids in BAD_IDS],
    row("PUT", f"{Q}/{ID}", {}, b"", 400, {"body": REQUIRED}, "put-empty"),
    row("PUT", f"{Q}/{ID}", {}, b"\xff", 400, {"body": ANY}, "put-not-utf8"),
    row("PUT", f"{Q}/{ID}", {"X-TTL": "0"}, b"x", 400,
        {"ttl": "0 is less than minimum value 1"}, "put-ttl-0"),
    row("PUT", f"{Q}/{ID}", {"X-TTL": "fred"}, b"x", 400,
        {"ttl": '"fred" is not a number'}, "put-ttl-nan"),
    row("PUT", f"{Q}/1:{ID},3:{ID}", {}, b"x", 400,
        {"partition": "3 is greater than maximum value 2"}, "put-partition-3"),
    row("PUT", f"{Q}/0:{ID}", {}, b"x", 400,
        {"partition": "0 is less than minimum value 1"}, "put-partition-0"),
    row("PUT", f"{Q}/3%3A{ID}", {"X-TTL": "0"}, b"", 400,
        {
            "body": REQUIRED,
            "ttl": "0 is less than minimum value 1",
            "partition": "3 is greater than maximum value 2",
        }, "put-all-together"),
    row("PUT", f"{Q}/{ID}", {}, b"x" * 1025, 413, TOO_BIG, "put-too-large"),
    row("PUT", f"{Q}/zzz", {"X-TTL": "0"}, b"\xff" * 1025, 413, TOO_BIG,
        "put-too-large-before-400"),
]  # fmt: skip


BIG = "9" * 5000
BIG_SHOWN = "9" * 20 + "..."
TOO_HIGH = f"{BIG_SHOWN} is greater than maximum value"
BIG_ROWS = [
    # A number of any length is answered by its field's rule, never a 500.
    row("POST", "/v1/app1", FORM, f"partitions={BIG}".encode(), 400,
        {"partitions": f"{TOO_HIGH} 200"}, "big-create-partitions-form"),
    row("POST", "/v1/app1", JSON_TYPE, f'{{"partitions": {BIG}}}'.encode(), 400,
        {"partitions": ANY}, "big-create-partitions-json-number"),
    row("POST", "/v1/app1", JSON_TYPE, f'{{"partitions": "-{BIG}"}}'.encode(), 400,
        {"partitions": f"-{BIG_SHOWN} is less than minimum value 1"}, "big-create-negative"),
    row("PUT", Q, JSON_TYPE, js({"partitions": BIG}), 400,
        {"partitions": f"{TOO_HIGH} 200"}, "big-update-partitions"),
    row("POST", Q, {"X-TTL": BIG}, b"x", 400, {"ttl": f"{TOO_HIGH} 33554432"}, "big-x-ttl"),
    row("POST", Q, {"X-Partition": BIG}, b"x", 400, {"partition": f"{TOO_HIGH} 2"},
        "big-x-partition"),
    row("POST", Q, JSON_TYPE, f'{{"messages": [{{"body": "a", "ttl": {BIG}}}]}}'.encode(), 400,
        {"0.ttl": ANY}, "big-batch-ttl-json-number"),
    row("POST", Q, JSON_TYPE, batch({"body": "a", "partition": BIG}), 400,
        {"0.partition": f"{TOO_HIGH} 2"}, "big-batch-partition"),
    row("GET", f"/v1/app1?limit={BIG}", {}, None, 400, {"limit": f"{TOO_HIGH} 1000"},
        "big-list-limit"),
    row("GET", f"{Q}?limit={BIG}", {}, None, 400, {"limit": f"{TOO_HIGH} 1000"},
        "big-read-limit"),
    row("PUT", f"{Q}/{BIG}:{ID}", {}, b"x", 400,
        {"partition": Shaped(r"[0-9]{20}\.\.\. is greater than maximum value 2")},
        "big-put-prefix"),
    row("POST", Q, {"X-TTL": "٣".encode()}, b"x", 400, {"ttl": ANY},  # type: ignore[dict-item]
        "arabic-digit-ttl"),
    row("POST", "/v1/app1", JSON_TYPE, js({"partitions": "٣"}), 400,
        {"partitions": '"٣" is not a number'}, "arabic-digit-partitions"),
    row("PUT", f"{Q}/-1:{ID}", {}, b"x", 400, {"partition": "-1 is less than minimum value 1"},
        "put-prefix-negative"),
    *[
        row("POST", "/v1/app1", JSON_TYPE, js({"queue_name": name}), 400, {"queue_name": ANY},
            f"create-name-{name}")
        for name in [".", "..", "a b", "a/b", "a,b", "a%b", "é"]
    ],
]  # fmt: skip


@pytest.fixture
async def vq(client: httpx.AsyncClient) -> AsyncIterator[str]:
    """app1's queue ``vq`` with two partitions and one message; after the test, unchanged."""
    name = await make_queue(client, queue_name="vq", partitions=2)
    await post(client, name, "kept", x_partition="2")
    before = await state(client)
    yield name
    assert await state(client) == before


async def state(client: httpx.AsyncClient) -> Any:
    """Everything a rejected request might have changed."""
    listing = await client.get(
        "/v1/app1", params={"details": "true", "include_count": "true"}, headers=APP1
    )
    return (
        ok(listing)["queues"],
        await read(client, "vq", partitions="1,2"),
        await read_ids(client, "vq", f"1:{ID},2:{ID}"),
    )


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "expected"),
    [*QUEUE_ROWS, *POST_ROWS, *READ_ROWS, *BY_ID_ROWS, *BIG_ROWS],
)
async def test_bad_input(
    client: httpx.AsyncClient,
    vq: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    expected: dict[str, Any],
) -> None:
    response = await client.request(method, path, content=body, headers={**APP1, **headers})
    assert error(response, status) == expected


async def test_limits_are_inclusive(client: httpx.AsyncClient, vq: str) -> None:
    """A body of exactly max_message_bytes is accepted (the vq fixture sees the change)."""
    body = "é" * 512  # 1024 UTF-8 bytes
    posted = await post(client, vq, body, x_partition="1")
    ok(await client.put(f"{Q}/{posted['key']}", content=body.encode(), headers=APP1))
    assert [m["body"] for m in await read(client, vq)] == [body]
    await client.delete(f"{Q}/{posted['key']}", headers=APP1)


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A request body of ``size`` bytes in 4 KiB chunks, sent without a Content-Length."""
    for start in range(0, size, 4096):
        yield b"x" * min(4096, size - start)


@pytest.mark.parametrize(("method", "path"), [("POST", Q), ("PUT", Q), ("POST", "/v1/app1")])
async def test_streamed_request_over_limit(
    client: httpx.AsyncClient, vq: str, method: str, path: str
) -> None:
    response = await client.request(method, path, content=chunks(70_000), headers=APP1)
    assert "content-length" not in response.request.headers
    assert error(response, 413) == TOO_BIG
