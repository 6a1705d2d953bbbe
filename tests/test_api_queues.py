"""Queue management through HTTP: create, update, delete and list (SPEC.md §3)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.api_support import error, ok, post, read
from tests.conftest import APP1, APP2, make_queue

SETTINGS = ("queue_name", "partitions", "type", "consistency", "principles")


def settings_of(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in SETTINGS}


async def details(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """The listing entry of app1's queue ``name`` with details."""
    response = await client.get(
        "/v1/app1", params={"offset": name, "limit": 1, "details": "true"}, headers=APP1
    )
    (item,) = ok(response)["queues"]
    assert item["queue_name"] == name
    return dict(item)


# -- create -------------------------------------------------------------------


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            {
                "data": {
                    "queue_name": "q.form-1",
                    "partitions": "3",
                    "type": "public",
                    "consistency": "weak",
                    "principles": " app:app2 ,bid:a@b.example,app:app2",
                }
            },
            id="form",
        ),
        pytest.param(
            {
                "json": {
                    "queue_name": "q.form-1",
                    "partitions": 3,
                    "type": "public",
                    "consistency": "weak",
                    "principles": ["app:app2", "bid:a@b.example"],
                }
            },
            id="json",
        ),
        pytest.param(
            {
                "json": {
                    "queue_name": "q.form-1",
                    "partitions": "3",
                    "type": "public",
                    "consistency": "weak",
                    "principles": "app:app2, bid:a@b.example",
                }
            },
            id="json-strings",
        ),
    ],
)
async def test_create(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    body = ok(await client.post("/v1/app1", headers=APP1, **send), 201)
    assert settings_of(body) == {
        "queue_name": "q.form-1",
        "partitions": 3,
        "type": "public",
        "consistency": "weak",
        "principles": ["app:app2", "bid:a@b.example"],
    }
    assert isinstance(body["created"], int | float)
    assert abs(body["created"] - time.time()) < 60
    assert settings_of(await details(client, "q.form-1")) == settings_of(body)


@pytest.mark.parametrize(
    "send",
    [{"json": {}}, {"content": b""}, {"data": {"queue_name": ""}}, {"json": {"queue_name": None}}],
    ids=["json", "empty", "form-empty-name", "json-null-name"],
)
async def test_create_defaults(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    body = ok(await client.post("/v1/app1", headers=APP1, **send), 201)
    name = body["queue_name"]
    assert len(name) == 32 and name == name.lower()
    assert uuid.UUID(hex=name).version == 4
    assert settings_of(body) == {
        "queue_name": name,
        "partitions": 1,
        "type": "user",
        "consistency": "strong",
        "principles": [],
    }


# Not "." or "..": valid names, but URL clients drop them from paths as dot segments.
@pytest.mark.parametrize("name", ["q" * 50, "A-z_0.9", "-", "_", "..."])
async def test_queue_names(client: httpx.AsyncClient, name: str) -> None:
    body = ok(await client.post("/v1/app1", data={"queue_name": name}, headers=APP1), 201)
    assert body["queue_name"] == name
    await post(client, name, "reachable")
    assert [m["body"] for m in await read(client, name)] == ["reachable"]


async def test_default_names_are_fresh(client: httpx.AsyncClient) -> None:
    names = {ok(await client.post("/v1/app1", headers=APP1), 201)["queue_name"] for _ in range(3)}
    assert len(names) == 3


async def test_create_existing_changes_nothing(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2, principles="app:app2")
    first = await details(client, name)
    again = {"queue_name": name, "partitions": 5, "type": "public", "principles": ""}
    body = ok(await client.post("/v1/app1", json=again, headers=APP1), 200)
    assert settings_of(body) == settings_of(first)
    assert body["created"] == first["created"]
    assert await details(client, name) == first


async def test_same_name_in_two_applications(client: httpx.AsyncClient) -> None:
    ok(
        await client.post("/v1/app1", json={"queue_name": "shared", "partitions": 2}, headers=APP1),
        201,
    )
    body = ok(await client.post("/v1/app2", json={"queue_name": "shared"}, headers=APP2), 201)
    assert body["partitions"] == 1


# -- update -------------------------------------------------------------------


async def test_update_replaces_given_fields(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2, principles="app:app2")
    created = await details(client, name)
    change = {"partitions": 4, "type": "public", "consistency": "very_strong"}
    body = ok(await client.put(f"/v1/app1/{name}", json=change, headers=APP1))
    assert settings_of(body) == {
        "queue_name": name,
        "partitions": 4,
        "type": "public",
        "consistency": "very_strong",
        "principles": ["app:app2"],  # not given: kept
    }
    assert body["created"] == created["created"]
    assert settings_of(await details(client, name)) == settings_of(body)
    # The new partitions take messages.
    assert (await post(client, name, x_partition="4"))["partition"] == 4


@pytest.mark.parametrize(
    "send",
    [{"data": {"principles": ""}}, {"json": {"principles": ""}}, {"json": {"principles": []}}],
    ids=["form", "json-string", "json-list"],
)
async def test_update_clears_principles(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    name = await make_queue(client, principles="app:app2,bid:a@b.example")
    body = ok(await client.put(f"/v1/app1/{name}", headers=APP1, **send))
    assert body["principles"] == []
    assert (await details(client, name))["principles"] == []


@pytest.mark.parametrize(
    ("space", "is_space"),
    [
        ("\u0085", True),
        ("\u3000", True),
        ("\t", True),
        ("\x1c", False),
        ("\x1f", False),
        ("\ufeff", False),
    ],
    ids=["NEL", "ideographic", "tab", "FS", "US", "BOM"],
)
async def test_principals_are_trimmed_of_unicode_white_space_only(
    client: httpx.AsyncClient, space: str, is_space: bool
) -> None:
    """SPEC §2: principals are trimmed and an e-mail address has no whitespace: Unicode's
    White_Space, as the document's patterns say (not Python's str.isspace, which also takes
    U+001C-U+001F; not ECMA-262's \\s, which also takes U+FEFF)."""
    name = await make_queue(client)
    trimmed = await client.put(
        f"/v1/app1/{name}", headers=APP1, json={"principles": f"{space}app:app2{space}"}
    )
    inside = await client.put(
        f"/v1/app1/{name}", headers=APP1, json={"principles": [f"bid:a{space}b@c.example"]}
    )
    if is_space:
        assert ok(trimmed)["principles"] == ["app:app2"]
        assert "principles" in error(inside, 400)
    else:
        assert "principles" in error(trimmed, 400)
        assert ok(inside)["principles"] == [f"bid:a{space}b@c.example"]


@pytest.mark.parametrize(
    "send",
    [{"json": {}}, {"content": b""}, {"json": {"principles": None, "partitions": None}}],
    ids=["json", "empty", "nulls"],
)
async def test_update_without_fields_keeps_all(
    client: httpx.AsyncClient, send: dict[str, Any]
) -> None:
    name = await make_queue(client, partitions=3, type="public", principles="app:app2")
    before = await details(client, name)
    body = ok(await client.put(f"/v1/app1/{name}", headers=APP1, **send))
    assert settings_of(body) == settings_of(before)
    assert await details(client, name) == before


async def test_update_with_own_name_is_allowed(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    body = ok(await client.put(f"/v1/app1/{name}", json={"queue_name": name}, headers=APP1))
    assert body["queue_name"] == name


@pytest.mark.parametrize(
    "change",
    [{"partitions": 2}, {"partitions": 1}, {"queue_name": "renamed"}],
    ids=["shrink", "shrink-to-1", "rename"],
)
async def test_invalid_update(client: httpx.AsyncClient, change: dict[str, Any]) -> None:
    name = await make_queue(client, partitions=3)
    before = await details(client, name)
    assert set(error(await client.put(f"/v1/app1/{name}", json=change, headers=APP1), 400)) == {
        "InvalidUpdate"
    }
    assert await details(client, name) == before
    names = [q["queue_name"] for q in ok(await client.get("/v1/app1", headers=APP1))["queues"]]
    assert names == [name]


# -- delete -------------------------------------------------------------------


async def test_delete_is_immediate(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, partitions=2)
    key = (await post(client, name, x_partition="2"))["key"]
    assert ok(await client.delete(f"/v1/app1/{name}", headers=APP1)) == {"status": "ok"}

    gone = {"InvalidQueueName": "Queue of that name was not found."}
    assert error(await client.get(f"/v1/app1/{name}", headers=APP1), 404) == gone
    assert error(await client.get(f"/v1/app1/{name}/2:{key}", headers=APP1), 404) == gone
    assert error(await client.post(f"/v1/app1/{name}", content=b"x", headers=APP1), 404) == gone
    assert error(await client.put(f"/v1/app1/{name}", json={}, headers=APP1), 404) == gone
    assert error(await client.delete(f"/v1/app1/{name}", headers=APP1), 404) == gone
    assert ok(await client.get("/v1/app1", headers=APP1))["queues"] == []

    # A queue created again under the name starts empty.
    await make_queue(client, queue_name=name, partitions=2)
    assert await read(client, name, partitions="1,2") == []


# -- list ---------------------------------------------------------------------

#: Names whose binary order differs from any case-insensitive or natural order.
NAMES = ["b", "a", "B", "_x", "-d", ".e", "0z", "a.1", "a-1", "Z9", "a_1", "aa", "A"]


@pytest.fixture
async def many(client: httpx.AsyncClient) -> list[str]:
    """app1's queues named NAMES, in binary order."""
    for name in NAMES:
        await make_queue(client, queue_name=name)
    return sorted(NAMES, key=str.encode)


async def names(client: httpx.AsyncClient, **params: Any) -> tuple[list[str], str | None]:
    body = ok(await client.get("/v1/app1", params=params, headers=APP1))
    return [q["queue_name"] for q in body["queues"]], body["next"]


async def test_list_in_binary_order(client: httpx.AsyncClient, many: list[str]) -> None:
    assert await names(client) == (many, None)
    assert ok(await client.get("/v1/app1", headers=APP1))["queues"][0] == {"queue_name": many[0]}


@pytest.mark.parametrize(
    ("offset", "limit"),
    [
        ("", 3),
        ("a", None),  # inclusive
        ("a0", None),  # need not exist: starts at the next name, "a_1"
        ("_", 2),
        ("-d", 1),
        ("zzz", None),
        ("", ""),  # empty means not given
    ],
)
async def test_list_limit_and_offset(
    client: httpx.AsyncClient, many: list[str], offset: str, limit: int | str | None
) -> None:
    rest = [name for name in many if name.encode() >= offset.encode()]
    size = limit if isinstance(limit, int) else 100
    params = {"offset": offset} if limit is None else {"offset": offset, "limit": limit}
    following = rest[size] if len(rest) > size else None
    assert await names(client, **params) == (rest[:size], following)


@pytest.mark.parametrize("limit", [1, 2, 5, len(NAMES) - 1, len(NAMES), 1000])
async def test_paging_with_next_visits_each_queue_once(
    client: httpx.AsyncClient, many: list[str], limit: int
) -> None:
    seen: list[str] = []
    offset: str | None = None
    for _ in range(len(many) + 1):
        page, offset = await names(client, limit=limit, offset=offset or "")
        assert 0 < len(page) <= limit
        seen += page
        if offset is None:
            break
    assert seen == many


async def test_list_details_and_count(client: httpx.AsyncClient) -> None:
    plain = await make_queue(client, queue_name="plain")
    fancy = await make_queue(
        client,
        queue_name="fancy",
        partitions=3,
        type="public",
        consistency="weak",
        principles="app:app2",
    )
    for partition in ("1", "2", "3", "3"):
        await post(client, fancy, x_partition=partition)
    response = await client.get(
        "/v1/app1", params={"details": "TRUE", "include_count": "yes"}, headers=APP1
    )
    queues = ok(response)["queues"]
    for item in queues:
        assert isinstance(item.pop("created"), int | float)
    assert queues == [
        {
            "queue_name": fancy,
            "partitions": 3,
            "type": "public",
            "consistency": "weak",
            "principles": ["app:app2"],
            "count": 4,
        },
        {
            "queue_name": plain,
            "partitions": 1,
            "type": "user",
            "consistency": "strong",
            "principles": [],
            "count": 0,
        },
    ]
    # include_count implies details, even beside details=no (as the original); on/off too.
    for query in ("include_count=1&details=no", "include_count=on", "include_count=ON&details=off"):
        counted = ok(await client.get(f"/v1/app1?{query}", headers=APP1))["queues"]
        for item in counted:
            item.pop("created")
        assert counted == queues, query
    plain_listing = ok(await client.get("/v1/app1?details=off&include_count=off", headers=APP1))
    assert plain_listing["queues"] == [{"queue_name": fancy}, {"queue_name": plain}]


async def test_list_shows_only_own_queues(client: httpx.AsyncClient) -> None:
    mine = await make_queue(client)
    ok(await client.post("/v1/app2", json={"queue_name": "theirs"}, headers=APP2), 201)
    assert await names(client) == ([mine], None)
    listed = ok(await client.get("/v1/app2", headers=APP2))["queues"]
    assert listed == [{"queue_name": "theirs"}]
