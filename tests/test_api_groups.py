"""Consumer groups through HTTP (SPEC.md §6, with the conventions of §1 and the rights of §2).

Black-box tests written from the SPEC alone: every request goes over HTTP to the
app, every expectation is a sentence of §6. Groups live under
``/v1/{app}/{queue}/groups/{group}``; their actions are ``…/claim``, ``…/ack``,
``…/release``, ``…/extend`` and ``…/seek``. Leases that must expire use
``lease_seconds=1`` and a sleep of about 1.3 s, so the whole file stays quick.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from tests.api_support import JSON_TYPE, error, ok, order_key, post, post_batch, read
from tests.conftest import APP1, APP2, Server, auth, free_port, make_queue, write_config

APP3 = auth("key3a")
ANONYMOUS: dict[str, str] = {}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DENIED = {"AccessDenied": "Access was denied to this resource."}
NO_GROUP = {"InvalidGroupName": "Group of that name was not found."}
NO_QUEUE = {"InvalidQueueName": "Queue of that name was not found."}
#: The settings every group answer carries (``created`` is checked on its own).
SETTINGS = ("group", "guarantee", "lease_seconds", "max_deliveries", "dead_letter_queue", "ordered")
COUNTERS = ("delivered", "acknowledged", "redelivered", "dead_lettered", "dropped", "expired")
ZERO = dict.fromkeys(COUNTERS, 0)
GUARANTEES = "at_most_once, at_least_once, exactly_once"
#: Long enough for a one-second lease to have ended, short enough to keep the file fast.
PAST_LEASE = 1.3


# -- helpers ------------------------------------------------------------------


def url(queue: str, group: str | None = "g", action: str = "", app: str = "app1") -> str:
    """The path of app1's groups of ``queue``, of one group, or of one of its actions."""
    path = f"/v1/{app}/{queue}/groups"
    if group is not None:
        path += f"/{group}"
    if action:
        path += f"/{action}"
    return path


def settings_of(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in SETTINGS}


def defaults(group: str = "g", guarantee: str = "at_least_once") -> dict[str, Any]:
    """The settings of a group created with no fields, ``dead_letter_queue`` as None."""
    return {
        "group": group,
        "guarantee": guarantee,
        "lease_seconds": 30,
        "max_deliveries": 0,
        "dead_letter_queue": None,
        "ordered": False,
    }


def normal(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with an absent dead letter queue written as None (SPEC allows null or "")."""
    return {**settings, "dead_letter_queue": settings["dead_letter_queue"] or None}


async def create_group(
    client: httpx.AsyncClient, queue: str, group: str = "g", status: int = 201, **fields: Any
) -> dict[str, Any]:
    """PUT a group of app1's ``queue`` with these JSON fields; the answer's body."""
    return ok(await client.put(url(queue, group), json=fields, headers=APP1), status)


async def group_state(
    client: httpx.AsyncClient, queue: str, group: str = "g", headers: dict[str, str] = APP1
) -> dict[str, Any]:
    """GET one group: its settings and its state."""
    return ok(await client.get(url(queue, group), headers=headers))


async def list_groups(
    client: httpx.AsyncClient, queue: str, headers: dict[str, str] = APP1
) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = ok(await client.get(url(queue, None), headers=headers))["groups"]
    return groups


def counters(state: dict[str, Any]) -> dict[str, int]:
    return {k: state[k] for k in COUNTERS}


def part(state: dict[str, Any], partition: int = 1) -> dict[str, Any]:
    """The state of one partition of a group."""
    (found,) = [p for p in state["partitions"] if p["partition"] == partition]
    return dict(found)


async def act(
    client: httpx.AsyncClient,
    queue: str,
    action: str,
    group: str = "g",
    headers: dict[str, str] = APP1,
    **fields: Any,
) -> httpx.Response:
    """POST one action of a group with these fields as a JSON body."""
    return await client.post(url(queue, group, action), json=fields, headers=headers)


async def claim_answer(
    client: httpx.AsyncClient,
    queue: str,
    group: str = "g",
    headers: dict[str, str] = APP1,
    **fields: Any,
) -> dict[str, Any]:
    return ok(await act(client, queue, "claim", group, headers, **fields))


async def claim(
    client: httpx.AsyncClient,
    queue: str,
    group: str = "g",
    headers: dict[str, str] = APP1,
    **fields: Any,
) -> list[dict[str, Any]]:
    """The messages a claim hands out."""
    messages: list[dict[str, Any]] = (await claim_answer(client, queue, group, headers, **fields))[
        "messages"
    ]
    return messages


async def ack(
    client: httpx.AsyncClient, queue: str, *receipts: str, group: str = "g", **fields: Any
) -> list[str]:
    """Acknowledge receipts that must all be accepted; the ``acknowledged`` list."""
    body = ok(await act(client, queue, "ack", group, receipts=list(receipts), **fields))
    acknowledged: list[str] = body["acknowledged"]
    return acknowledged


async def release(
    client: httpx.AsyncClient, queue: str, *receipts: str, group: str = "g", **fields: Any
) -> list[str]:
    body = ok(await act(client, queue, "release", group, receipts=list(receipts), **fields))
    released: list[str] = body["released"]
    return released


async def extend(
    client: httpx.AsyncClient, queue: str, *receipts: str, group: str = "g", **fields: Any
) -> dict[str, Any]:
    return ok(await act(client, queue, "extend", group, receipts=list(receipts), **fields))


async def seek(
    client: httpx.AsyncClient, queue: str, group: str = "g", **fields: Any
) -> dict[str, Any]:
    return ok(await act(client, queue, "seek", group, **fields))


def lease_lost(response: httpx.Response) -> dict[str, Any]:
    """The whole body of a 409 ``LeaseLost`` answer."""
    assert set(error(response, 409)) == {"LeaseLost"}
    body: dict[str, Any] = response.json()
    return body


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["message_id"] for m in messages]


def receipts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["receipt"] for m in messages]


def keys(posted: list[dict[str, Any]]) -> list[str]:
    return [p["key"] for p in posted]


def cursor_not_after(cursor: str | None, message: dict[str, Any]) -> None:
    """The cursor may not pass ``message``, which is not done: every message before it is."""
    if cursor is None:
        return
    assert isinstance(cursor, str)
    if len(cursor) == 32 and all(c in "0123456789abcdefABCDEF" for c in cursor):
        assert order_key(cursor) <= order_key(message["key"])
    else:
        assert Decimal(cursor) <= Decimal(message["timestamp"])


async def post_many(client: httpx.AsyncClient, queue: str, n: int, **headers: str) -> list[Any]:
    return [await post(client, queue, f"m{i}", **headers) for i in range(n)]


# -- create, update, read, list, delete ---------------------------------------


@pytest.mark.parametrize(
    ("consistency", "guarantee"),
    [("weak", "at_most_once"), ("strong", "at_least_once"), ("very_strong", "exactly_once")],
)
async def test_create_with_defaults(
    client: httpx.AsyncClient, consistency: str, guarantee: str
) -> None:
    queue = await make_queue(client, consistency=consistency)
    body = await create_group(client, queue)
    assert normal(settings_of(body)) == defaults(guarantee=guarantee)
    assert isinstance(body["created"], int | float)
    assert abs(body["created"] - time.time()) < 60
    state = await group_state(client, queue)
    assert normal(settings_of(state)) == defaults(guarantee=guarantee)
    assert state["created"] == body["created"]


@pytest.mark.parametrize(
    "send",
    [
        {"json": {}},
        {"content": b""},
        {"data": {}},
        {"json": {"guarantee": None, "lease_seconds": None, "ordered": None, "start": None}},
    ],
    ids=["json", "empty", "form-empty", "json-nulls"],
)
async def test_create_without_fields(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    queue = await make_queue(client)
    body = ok(await client.put(url(queue), headers=APP1, **send), 201)
    assert normal(settings_of(body)) == defaults()


@pytest.mark.parametrize(
    "send",
    [
        {
            "json": {
                "guarantee": "exactly_once",
                "lease_seconds": 5,
                "max_deliveries": 3,
                "dead_letter_queue": "dead",
                "ordered": True,
            }
        },
        {
            "json": {
                "guarantee": "exactly_once",
                "lease_seconds": "5",
                "max_deliveries": " 3 ",
                "dead_letter_queue": "dead",
                "ordered": "yes",
            }
        },
        {
            "data": {
                "guarantee": "exactly_once",
                "lease_seconds": "005",
                "max_deliveries": "+3",
                "dead_letter_queue": "dead",
                "ordered": "ON",
            }
        },
    ],
    ids=["json", "json-strings", "form"],
)
async def test_create_with_fields(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    queue = await make_queue(client, consistency="weak")
    await make_queue(client, queue_name="dead")
    body = ok(await client.put(url(queue, "workers"), headers=APP1, **send), 201)
    expected = {
        "group": "workers",
        "guarantee": "exactly_once",
        "lease_seconds": 5,
        "max_deliveries": 3,
        "dead_letter_queue": "dead",
        "ordered": True,
    }
    assert settings_of(body) == expected
    assert settings_of(await group_state(client, queue, "workers")) == expected
    (listed,) = await list_groups(client, queue)
    assert settings_of(listed) == expected


async def test_update_replaces_given_fields(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await make_queue(client, queue_name="dead")
    created = await create_group(client, queue, lease_seconds=7, max_deliveries=2)
    body = await create_group(client, queue, status=200, ordered="true", dead_letter_queue="dead")
    expected = {
        **defaults(),
        "lease_seconds": 7,  # not given: kept
        "max_deliveries": 2,
        "ordered": True,
        "dead_letter_queue": "dead",
    }
    assert settings_of(body) == expected
    assert body["created"] == created["created"]
    # null means "not given"; an empty string removes the dead letter queue.
    body = await create_group(client, queue, status=200, dead_letter_queue=None, lease_seconds=None)
    assert settings_of(body) == expected
    body = await create_group(
        client, queue, status=200, dead_letter_queue="", guarantee="exactly_once"
    )
    expected = {**expected, "dead_letter_queue": None, "guarantee": "exactly_once"}
    assert normal(settings_of(body)) == expected
    assert normal(settings_of(await group_state(client, queue))) == expected
    # A form body updates too; new leases follow the new settings.
    response = await client.put(url(queue), data={"lease_seconds": "9"}, headers=APP1)
    assert normal(settings_of(ok(response))) == {**expected, "lease_seconds": 9}
    await post(client, queue, "x")
    assert (await claim_answer(client, queue))["lease_seconds"] == 9


async def test_guarantee_is_fixed_when_created(client: httpx.AsyncClient) -> None:
    """The default guarantee comes from the queue's consistency at creation, not later."""
    queue = await make_queue(client, consistency="weak")
    await create_group(client, queue)
    ok(await client.put(f"/v1/app1/{queue}", json={"consistency": "very_strong"}, headers=APP1))
    assert (await create_group(client, queue, status=200))["guarantee"] == "at_most_once"
    assert (await group_state(client, queue))["guarantee"] == "at_most_once"
    assert (await create_group(client, queue, "new"))["guarantee"] == "exactly_once"


@pytest.mark.parametrize(
    "send",
    [{"json": {"start": "earliest"}}, {"json": {"start": "latest"}}, {"data": {"start": "latest"}}],
    ids=["json-earliest", "json-latest", "form"],
)
async def test_start_only_on_creation(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, lease_seconds=7)
    before = await group_state(client, queue)
    response = await client.put(url(queue), headers=APP1, **send)
    assert set(error(response, 400)) == {"InvalidUpdate"}
    after = await group_state(client, queue)
    assert settings_of(after) == settings_of(before)
    assert after["partitions"] == before["partitions"]


# Not "." or "..": URL clients drop them from paths. "%2B" is a "+".
@pytest.mark.parametrize(
    ("path_name", "name"),
    [
        ("g" * 50, "g" * 50),
        ("A-z_0.9", "A-z_0.9"),
        ("user:42", "user:42"),
        ("a@b.example", "a@b.example"),
        ("~", "~"),
        ("a%2Bb=c", "a+b=c"),
        ("...", "..."),
    ],
)
async def test_group_names(client: httpx.AsyncClient, path_name: str, name: str) -> None:
    queue = await make_queue(client)
    assert (await create_group(client, queue, path_name))["group"] == name
    assert (await group_state(client, queue, path_name))["group"] == name
    assert [g["group"] for g in await list_groups(client, queue)] == [name]
    await post(client, queue, "x")
    assert len(await claim(client, queue, path_name)) == 1


@pytest.mark.parametrize("name", ["a!b", "a%20b", "g" * 51, "a%2Fb", "a%23b", "%C3%A9"])
async def test_bad_group_names(client: httpx.AsyncClient, name: str) -> None:
    queue = await make_queue(client)
    # On creation: 400 keyed "group", with every other invalid field.
    response = await client.put(url(queue, name), json={}, headers=APP1)
    assert error(response, 400) == {"group": ANY}
    response = await client.put(url(queue, name), json={"lease_seconds": 0}, headers=APP1)
    assert error(response, 400) == {
        "group": ANY,
        "lease_seconds": "0 is less than minimum value 1",
    }
    # On access: like an unknown group.
    assert error(await client.get(url(queue, name), headers=APP1), 404) == NO_GROUP
    assert error(await client.delete(url(queue, name), headers=APP1), 404) == NO_GROUP
    assert error(await act(client, queue, "claim", name), 404) == NO_GROUP
    assert await list_groups(client, queue) == []


async def test_unknown_group(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, "other")
    assert error(await client.get(url(queue, "nosuch"), headers=APP1), 404) == NO_GROUP
    assert error(await client.delete(url(queue, "nosuch"), headers=APP1), 404) == NO_GROUP
    requests: list[tuple[str, dict[str, Any]]] = [
        ("claim", {}),
        ("ack", {"receipts": ["r"]}),
        ("release", {"receipts": ["r"]}),
        ("extend", {"receipts": ["r"]}),
        ("seek", {"to": "earliest"}),
    ]
    for action, fields in requests:
        assert error(await act(client, queue, action, "nosuch", **fields), 404) == NO_GROUP, action


async def test_list_in_binary_order(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    assert await list_groups(client, queue) == []
    names = ["b", "a", "B", "_x", "-d", ".e", "0z", "a.1", "a-1", "Z9", "a_1", "aa", "~"]
    for i, name in enumerate(names):
        await create_group(client, queue, name, lease_seconds=i + 1)
    listed = await list_groups(client, queue)
    assert [g["group"] for g in listed] == sorted(names, key=str.encode)
    for group in listed:
        expected = {**defaults(group["group"]), "lease_seconds": names.index(group["group"]) + 1}
        assert normal(settings_of(group)) == expected
        assert isinstance(group["created"], int | float)
    # Trailing slashes are ignored, as on every path; groups belong to their queue.
    response = await client.get(f"/v1/app1/{queue}/groups/", headers=APP1)
    assert [g["group"] for g in ok(response)["groups"]] == sorted(names, key=str.encode)
    assert await list_groups(client, await make_queue(client)) == []


async def test_head_of_a_group(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    for path in (url(queue), url(queue, None)):
        response = await client.head(path, headers=APP1)
        assert response.status_code == 200
        assert response.content == b""
    assert (await client.head(url(queue, "nosuch"), headers=APP1)).status_code == 404


async def test_delete_group(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    await create_group(client, queue, "kept")
    posted = await post(client, queue, "x")
    (old,) = await claim(client, queue)
    assert ok(await client.delete(url(queue), headers=APP1)) == {"status": "ok"}

    assert error(await client.get(url(queue), headers=APP1), 404) == NO_GROUP
    assert error(await act(client, queue, "ack", receipts=[old["receipt"]]), 404) == NO_GROUP
    assert error(await act(client, queue, "claim"), 404) == NO_GROUP
    assert error(await client.delete(url(queue), headers=APP1), 404) == NO_GROUP
    assert [g["group"] for g in await list_groups(client, queue)] == ["kept"]
    # The message is still in the queue, and the other group still gets it.
    assert ids(await read(client, queue)) == [posted["key"]]
    assert ids(await claim(client, queue, "kept")) == [posted["key"]]

    # Created again under the name: it starts afresh, the old receipts are lost there.
    body = await create_group(client, queue, lease_seconds=9)
    assert normal(settings_of(body)) == {**defaults(), "lease_seconds": 9}
    assert counters(await group_state(client, queue)) == ZERO
    lost = lease_lost(await act(client, queue, "ack", receipts=[old["receipt"]]))
    assert (lost["acknowledged"], lost["lost"]) == ([], [old["receipt"]])
    (again,) = await claim(client, queue)
    assert (again["message_id"], again["deliveries"]) == (posted["key"], 1)
    assert await ack(client, queue, again["receipt"]) == [again["receipt"]]


async def test_deleting_the_queue_deletes_its_groups(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    await post(client, queue, "x")
    (old,) = await claim(client, queue)
    ok(await client.delete(f"/v1/app1/{queue}", headers=APP1))
    assert error(await client.get(url(queue), headers=APP1), 404) == NO_QUEUE
    assert error(await client.get(url(queue, None), headers=APP1), 404) == NO_QUEUE
    assert error(await act(client, queue, "claim"), 404) == NO_QUEUE

    await make_queue(client, queue_name=queue)
    assert await list_groups(client, queue) == []
    assert error(await client.get(url(queue), headers=APP1), 404) == NO_GROUP
    assert error(await act(client, queue, "ack", receipts=[old["receipt"]]), 404) == NO_GROUP


# -- validation -----------------------------------------------------------------


def bad(fields: dict[str, Any], expected: dict[str, Any], id: str) -> Any:
    return pytest.param(fields, expected, id=id)


LESS_1 = "0 is less than minimum value 1"
SETTING_ROWS = [
    bad({"guarantee": "x"}, {"guarantee": f'"x" is not one of {GUARANTEES}'}, "guarantee-x"),
    bad({"guarantee": "AT_LEAST_ONCE"},
        {"guarantee": f'"AT_LEAST_ONCE" is not one of {GUARANTEES}'}, "guarantee-case"),
    bad({"lease_seconds": "fred"}, {"lease_seconds": '"fred" is not a number'}, "lease-nan"),
    bad({"lease_seconds": 2.5}, {"lease_seconds": '"2.5" is not a number'}, "lease-float"),
    bad({"lease_seconds": 0}, {"lease_seconds": LESS_1}, "lease-0"),
    bad({"lease_seconds": "43201"},
        {"lease_seconds": "43201 is greater than maximum value 43200"}, "lease-43201"),
    bad({"lease_seconds": "9" * 40}, {"lease_seconds": ANY}, "lease-huge"),
    bad({"max_deliveries": "-" + "9" * 40}, {"max_deliveries": ANY}, "max-deliveries-huge"),
    bad({"max_deliveries": -1},
        {"max_deliveries": "-1 is less than minimum value 0"}, "max-deliveries--1"),
    bad({"max_deliveries": 1001},
        {"max_deliveries": "1001 is greater than maximum value 1000"}, "max-deliveries-1001"),
    bad({"ordered": "maybe"}, {"ordered": '"maybe" is not one of true, false'}, "ordered"),
    bad({"dead_letter_queue": "nosuch"}, {"dead_letter_queue": ANY}, "dlq-missing"),
    bad({"dead_letter_queue": "a b"}, {"dead_letter_queue": ANY}, "dlq-bad-name"),
    bad({"guarantee": "x", "lease_seconds": 0, "max_deliveries": 1001, "ordered": "maybe",
         "dead_letter_queue": "nosuch"},
        {"guarantee": f'"x" is not one of {GUARANTEES}', "lease_seconds": LESS_1,
         "max_deliveries": "1001 is greater than maximum value 1000",
         "ordered": '"maybe" is not one of true, false', "dead_letter_queue": ANY},
        "all-together"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "expected"), SETTING_ROWS)
async def test_invalid_settings_on_creation(
    client: httpx.AsyncClient, fields: dict[str, Any], expected: dict[str, str]
) -> None:
    queue = await make_queue(client)
    assert error(await client.put(url(queue), json=fields, headers=APP1), 400) == expected
    form = {k: str(v) for k, v in fields.items()}
    assert error(await client.put(url(queue), data=form, headers=APP1), 400) == expected
    assert error(await client.get(url(queue), headers=APP1), 404) == NO_GROUP
    assert await list_groups(client, queue) == []


@pytest.mark.parametrize(("fields", "expected"), SETTING_ROWS)
async def test_invalid_settings_on_update(
    client: httpx.AsyncClient, fields: dict[str, Any], expected: dict[str, str]
) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, lease_seconds=7)
    before = await group_state(client, queue)
    assert error(await client.put(url(queue), json=fields, headers=APP1), 400) == expected
    assert settings_of(await group_state(client, queue)) == settings_of(before)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"{", {"InvalidJSON": ANY}), (b"[1]", {"InvalidJSON": ANY}), (b"x", {"InvalidJSON": ANY})],
    ids=["malformed", "not-object", "not-json"],
)
async def test_malformed_json(
    client: httpx.AsyncClient, content: bytes, expected: dict[str, str]
) -> None:
    queue = await make_queue(client)
    headers = {**APP1, **JSON_TYPE}
    assert error(await client.put(url(queue), content=content, headers=headers), 400) == expected
    await create_group(client, queue)
    for action in ("claim", "ack", "release", "extend", "seek"):
        response = await client.post(url(queue, "g", action), content=content, headers=headers)
        assert error(response, 400) == expected, action


async def test_start_is_validated(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    response = await client.put(url(queue), json={"start": "fred"}, headers=APP1)
    assert set(error(response, 400)) == {"start"}
    assert error(await client.get(url(queue), headers=APP1), 404) == NO_GROUP


#: Requests against a group holding one leased message (``{r}``: its receipt).
def bad_action(action: str, fields: dict[str, Any], expected: dict[str, Any], id: str) -> Any:
    return pytest.param(action, fields, expected, id=id)


R = ["{r}"]
ACTION_ROWS = [
    bad_action("claim", {"limit": 0}, {"limit": LESS_1}, "limit-0"),
    bad_action("claim", {"limit": 1001},
               {"limit": "1001 is greater than maximum value 1000"}, "limit-1001"),
    bad_action("claim", {"limit": "fred"}, {"limit": '"fred" is not a number'}, "limit-nan"),
    bad_action("claim", {"wait": 61}, {"wait": "61 is greater than maximum value 60"}, "wait-61"),
    bad_action("claim", {"wait": -1}, {"wait": "-1 is less than minimum value 0"}, "wait--1"),
    bad_action("claim", {"consumer": "c" * 101}, {"consumer": ANY}, "consumer-101"),
    bad_action("claim", {"partitions": "x"}, {"partitions": ANY}, "partitions-x"),
    bad_action("claim", {"limit": 0, "wait": 61},
               {"limit": LESS_1, "wait": "61 is greater than maximum value 60"}, "claim-together"),
    bad_action("ack", {}, {"receipts": "Required"}, "ack-missing"),
    bad_action("ack", {"receipts": None}, {"receipts": "Required"}, "ack-null"),
    bad_action("ack", {"receipts": []}, {"receipts": ANY}, "ack-empty"),
    bad_action("ack", {"receipts": [1]}, {"receipts": ANY}, "ack-number"),
    bad_action("ack", {"receipts": [*R, "fred"]}, {"receipts": ANY}, "ack-made-up"),
    bad_action("ack", {"receipts": [*R, ""]}, {"receipts": ANY}, "ack-empty-string"),
    bad_action("ack", {"receipts": [*R] + ["x"] * 1000}, {"receipts": ANY}, "ack-1001"),
    bad_action("release", {"receipts": [*R, "fred"]}, {"receipts": ANY}, "release-made-up"),
    bad_action("release", {"receipts": R, "delay": 43201},
               {"delay": "43201 is greater than maximum value 43200"}, "delay-43201"),
    bad_action("release", {"receipts": R, "delay": -1},
               {"delay": "-1 is less than minimum value 0"}, "delay--1"),
    bad_action("release", {"receipts": R, "delay": "x"},
               {"delay": '"x" is not a number'}, "delay-nan"),
    bad_action("extend", {"receipts": [*R, "fred"]}, {"receipts": ANY}, "extend-made-up"),
    bad_action("extend", {"receipts": R, "seconds": 0}, {"seconds": LESS_1}, "seconds-0"),
    bad_action("extend", {"receipts": R, "seconds": 43201},
               {"seconds": "43201 is greater than maximum value 43200"}, "seconds-43201"),
    bad_action("seek", {}, {"to": "Required"}, "seek-missing"),
    bad_action("seek", {"to": "fred"}, {"to": ANY}, "seek-fred"),
    bad_action("seek", {"to": "earliest", "partitions": "x"}, {"partitions": ANY}, "seek-p"),
    bad_action("claim", {"limit": "9" * 40, "wait": "9" * 40},
               {"limit": ANY, "wait": ANY}, "claim-huge"),
    bad_action("release", {"receipts": R, "delay": "9" * 40}, {"delay": ANY}, "delay-huge"),
    bad_action("extend", {"receipts": R, "seconds": "9" * 40}, {"seconds": ANY}, "seconds-huge"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "fields", "expected"), ACTION_ROWS)
async def test_invalid_actions_do_nothing(
    client: httpx.AsyncClient, action: str, fields: dict[str, Any], expected: dict[str, str]
) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    await post_many(client, queue, 2)
    (leased,) = await claim(client, queue, limit=1)
    receipt = leased["receipt"]
    if isinstance(fields.get("receipts"), list):
        fields = {**fields, "receipts": [receipt if r == "{r}" else r for r in fields["receipts"]]}
    assert error(await act(client, queue, action, **fields), 400) == expected

    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 1}
    assert part(state)["in_flight"] == 1
    assert part(state)["pending"] == 2
    assert await ack(client, queue, receipt) == [receipt]


# -- rights ---------------------------------------------------------------------

READ = {"list", "state"}
MANAGE = {"create", "update", "delete"}
CONSUME = {"claim", "ack", "release", "extend", "seek"}
EVERYTHING = READ | MANAGE | CONSUME
#: Each operation: method, path under the queue, JSON body, status when allowed.
OPERATIONS: dict[str, tuple[str, str, dict[str, Any] | None, int]] = {
    "list": ("GET", "groups", None, 200),
    "state": ("GET", "groups/g", None, 200),
    "create": ("PUT", "groups/new", {"lease_seconds": 5}, 201),
    "update": ("PUT", "groups/g", {"lease_seconds": 5}, 200),
    "delete": ("DELETE", "groups/g", None, 200),
    "claim": ("POST", "groups/g/claim", {}, 200),
    "ack": ("POST", "groups/g/ack", {"receipts": ["bogus"]}, 400),
    "release": ("POST", "groups/g/release", {"receipts": ["bogus"]}, 400),
    "extend": ("POST", "groups/g/extend", {"receipts": ["bogus"]}, 400),
    "seek": ("POST", "groups/g/seek", {"to": "earliest"}, 200),
}
#: Queue setups (queue fields) and who may do what there.
SETUPS: dict[str, dict[str, Any]] = {
    "private": {},
    "shared": {"principles": "app:app2"},
    "both": {"principles": "app:app1,app:app2"},
    "public": {"type": "public"},
    "public-shared": {"type": "public", "principles": "app:app2"},
}
RIGHTS = [
    ("private", "app1", APP1, EVERYTHING),
    ("private", "app2", APP2, set()),
    ("private", "app3", APP3, set()),
    ("private", "anonymous", ANONYMOUS, set()),
    # The owner manages and reads groups; only the principals consume.
    ("shared", "app1", APP1, READ | MANAGE),
    ("shared", "app2", APP2, READ | CONSUME),
    ("shared", "app3+app2", auth("key3a", "key2"), READ | CONSUME),
    ("shared", "app3", APP3, set()),
    ("shared", "anonymous", ANONYMOUS, set()),
    ("both", "app1", APP1, EVERYTHING),
    ("both", "app2", APP2, READ | CONSUME),
    ("public", "anonymous", ANONYMOUS, set()),
    ("public", "app2", APP2, set()),
    ("public-shared", "anonymous", ANONYMOUS, set()),
    ("public-shared", "app2", APP2, READ | CONSUME),
]


@pytest.mark.parametrize(
    ("setup", "headers", "allowed"),
    [pytest.param(s, h, a, id=f"{s}-{who}") for s, who, h, a in RIGHTS],
)
async def test_rights(
    client: httpx.AsyncClient, setup: str, headers: dict[str, str], allowed: set[str]
) -> None:
    for operation, (method, path, fields, status) in OPERATIONS.items():
        queue = await make_queue(client, **SETUPS[setup])
        await create_group(client, queue)
        await post(client, queue, "x")
        response = await client.request(
            method, f"/v1/app1/{queue}/{path}", json=fields, headers=headers
        )
        if operation in allowed:
            assert response.status_code == status, (operation, response.text)
            continue
        assert error(response, 403) == DENIED, operation
        # Nothing happened.
        state = await group_state(client, queue)
        assert normal(settings_of(state)) == defaults(), operation
        assert counters(state) == ZERO, operation
        assert [g["group"] for g in await list_groups(client, queue)] == ["g"], operation


async def test_owner_not_among_principles_cannot_consume(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, principles="app:app2")
    await create_group(client, queue)
    posted = await post(client, queue, "x")
    assert error(await act(client, queue, "claim"), 403) == DENIED
    (message,) = await claim(client, queue, headers=APP2, consumer="two")
    assert message["message_id"] == posted["key"]
    # The owner sees the state, the consumer's acknowledgement works.
    assert part(await group_state(client, queue))["consumers"] == ["two"]
    response = await act(client, queue, "ack", headers=APP1, receipts=[message["receipt"]])
    assert error(response, 403) == DENIED
    response = await act(client, queue, "ack", headers=APP2, receipts=[message["receipt"]])
    assert ok(response)["acknowledged"] == [message["receipt"]]
    assert (await group_state(client, queue, headers=APP2))["acknowledged"] == 1


async def test_order_of_checks(client: httpx.AsyncClient) -> None:
    """401 → 404 application → 404 queue → 403 → 404 group (→ 400)."""
    queue = await make_queue(client, principles="app:app2")
    await create_group(client, queue)
    wrong = {"Authorization": "Application wrong"}
    bad_claim = {"limit": 0}

    async def claim_status(path: str, headers: dict[str, str]) -> dict[str, str]:
        response = await client.post(f"{path}/claim", json=bad_claim, headers=headers)
        return error(response, response.status_code) | {"": str(response.status_code)}

    cases = [
        ("/v1/nobody/q/groups/nosuch", wrong, "401", "InvalidApplicationKey"),
        (f"/v1/app1/{queue}/groups/g", wrong, "401", "InvalidApplicationKey"),
        ("/v1/nobody/q/groups/nosuch", APP3, "404", "NotFound"),
        ("/v1/app1/nosuch/groups/nosuch", APP3, "404", "InvalidQueueName"),
        (f"/v1/app1/{queue}/groups/nosuch", APP3, "403", "AccessDenied"),
        (f"/v1/app1/{queue}/groups/nosuch", ANONYMOUS, "403", "AccessDenied"),
        (f"/v1/app1/{queue}/groups/g", APP3, "403", "AccessDenied"),
        (f"/v1/app1/{queue}/groups/g", APP1, "403", "AccessDenied"),  # the owner is no consumer
        (f"/v1/app1/{queue}/groups/nosuch", APP2, "404", "InvalidGroupName"),
        (f"/v1/app1/{queue}/groups/g", APP2, "400", "limit"),
    ]
    for path, headers, status, key in cases:
        found = await claim_status(path, headers)
        assert (found.pop(""), set(found)) == (status, {key}), (path, headers)

    # Creating and reading: the same order; a non-owner's invalid creation is 403.
    response = await client.put(f"/v1/app1/{queue}/groups/a!b", json={}, headers=APP2)
    assert error(response, 403) == DENIED
    response = await client.get(f"/v1/app1/{queue}/groups/nosuch", headers=APP3)
    assert error(response, 403) == DENIED
    response = await client.get("/v1/app1/nosuch/groups", headers=APP1)
    assert error(response, 404) == NO_QUEUE
    response = await client.get(f"/v1/app2/{queue}/groups/g", headers=APP2)
    assert error(response, 404) == NO_QUEUE


# -- claim ------------------------------------------------------------------------


async def test_claim_answer(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue, lease_seconds=7)
    posted = await post(client, queue, "hello", content_type="application/x-thing", x_partition="2")
    body = await claim_answer(client, queue)
    assert body["lease_seconds"] == 7
    (message,) = body["messages"]
    assert {k: message[k] for k in ("message_id", "timestamp", "body", "partition")} == {
        "message_id": posted["key"],
        "timestamp": posted["timestamp"],
        "body": "hello",
        "partition": 2,
    }
    assert message["content_type"] == "application/x-thing"
    assert message["deliveries"] == 1
    assert isinstance(message["receipt"], str) and message["receipt"]
    # Nothing more is available: an empty list.
    body = await claim_answer(client, queue)
    assert (body["lease_seconds"], body["messages"]) == (7, [])


async def test_claim_defaults_and_limit(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    posted = await post_batch(client, queue, *[{"body": f"m{i}"} for i in range(25)])
    # No body at all, and a form body: the defaults (limit 10).
    first = ok(await client.post(url(queue, "g", "claim"), headers=APP1))["messages"]
    assert ids(first) == keys(posted[:10])
    second = ok(await client.post(url(queue, "g", "claim"), data={}, headers=APP1))["messages"]
    assert ids(second) == keys(posted[10:20])
    assert ids(await claim(client, queue, limit=None)) == keys(posted[20:])
    assert await claim(client, queue) == []


async def test_oldest_first_and_one_lease_at_a_time(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    posted = await post_many(client, queue, 5)
    assert ids(await claim(client, queue, limit=1)) == [posted[0]["key"]]
    # Not ordered: another claim gets the next messages of the same partition at once.
    assert ids(await claim(client, queue, limit="2")) == keys(posted[1:3])
    assert ids(await claim(client, queue, limit=1000)) == keys(posted[3:])
    assert await claim(client, queue) == []


@pytest.mark.parametrize("guarantee", ["at_most_once", "at_least_once", "exactly_once"])
async def test_concurrent_claims_never_share_a_message(
    client: httpx.AsyncClient, guarantee: str
) -> None:
    queue = await make_queue(client, partitions=3)
    await create_group(client, queue, guarantee=guarantee)
    posted = await post_batch(client, queue, *[{"body": f"m{i}"} for i in range(30)])
    answers = await asyncio.gather(*(claim(client, queue, limit=3) for _ in range(12)))
    handed = [m["message_id"] for answer in answers for m in answer]
    handed += ids(await claim(client, queue, limit=1000))
    assert len(handed) == len(set(handed))
    assert sorted(handed) == sorted(keys(posted))
    assert (await group_state(client, queue))["delivered"] == 30


async def test_claim_limit_counts_messages_across_partitions(client: httpx.AsyncClient) -> None:
    """``limit`` caps the messages of one claim (range reads say "per partition"; claims don't)."""
    queue = await make_queue(client, partitions=3)
    await create_group(client, queue)
    items = [{"body": f"m{i}", "partition": 1 + i % 3} for i in range(12)]
    posted = await post_batch(client, queue, *items)
    found = await claim(client, queue, limit=4)
    assert len(found) == 4
    found += await claim(client, queue, limit=100)
    assert sorted(ids(found)) == sorted(keys(posted))
    # Oldest first in each partition.
    for p in (1, 2, 3):
        assert [m["message_id"] for m in found if m["partition"] == p] == [
            k["key"] for k in posted if k["partition"] == p
        ]


async def test_bodies_too_large(client: httpx.AsyncClient) -> None:
    """Group bodies follow the request limits (413 before 400, after 403)."""
    queue = await make_queue(client)
    await create_group(client, queue)
    big = {"lease_seconds": "0", "x": "y" * 70_000}
    for path in (url(queue, "new"), url(queue)):
        response = await client.put(path, data=big, headers=APP1)
        assert set(error(response, 413)) == {"PayloadTooLarge"}
    for action in ("claim", "ack", "seek"):
        response = await client.post(url(queue, "g", action), data=big, headers=APP1)
        assert set(error(response, 413)) == {"PayloadTooLarge"}, action
        response = await client.post(url(queue, "g", action), data=big, headers=APP3)
        assert error(response, 403) == DENIED
    assert [g["group"] for g in await list_groups(client, queue)] == ["g"]
    assert (await group_state(client, queue))["lease_seconds"] == 30


async def test_claim_partitions(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=3)
    await create_group(client, queue)
    posted = {p: await post(client, queue, f"p{p}", x_partition=str(p)) for p in (1, 2, 3)}
    assert await claim(client, queue, partitions=[7, 0]) == []
    assert ids(await claim(client, queue, partitions=[2])) == [posted[2]["key"]]
    assert ids(await claim(client, queue, partitions="1,9")) == [posted[1]["key"]]
    form = {"partitions": "3,0", "limit": "5", "consumer": "former"}
    found = ok(await client.post(url(queue, "g", "claim"), data=form, headers=APP1))["messages"]
    assert ids(found) == [posted[3]["key"]]
    assert part(await group_state(client, queue), 3)["consumers"] == ["former"]


async def test_consumers_in_the_state(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue)
    for p in (1, 1, 2):
        await post(client, queue, "x", x_partition=str(p))
    (alice,) = await claim(client, queue, partitions=[1], limit=1, consumer="alice")
    (bob,) = await claim(client, queue, partitions=[1], limit=1, consumer="bob")
    await claim(client, queue, partitions="2", consumer="c" * 100)
    state = await group_state(client, queue)
    assert [p["partition"] for p in state["partitions"]] == [1, 2]
    assert sorted(part(state, 1)["consumers"]) == ["alice", "bob"]
    assert part(state, 2)["consumers"] == ["c" * 100]
    assert (part(state, 1)["in_flight"], part(state, 2)["in_flight"]) == (2, 1)
    await ack(client, queue, alice["receipt"])
    await release(client, queue, bob["receipt"])
    state = await group_state(client, queue)
    assert part(state, 1)["consumers"] == []
    assert part(state, 1)["in_flight"] == 0


async def test_claim_wait_runs_out(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    started = time.monotonic()
    assert await claim(client, queue, wait=1) == []
    assert time.monotonic() - started >= 0.9


async def test_claim_wait_gets_a_message_posted_meanwhile(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)

    async def post_later() -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return await post(client, queue, "late")

    found, posted = await asyncio.gather(claim(client, queue, wait=5), post_later())
    assert [(m["message_id"], m["body"]) for m in found] == [(posted["key"], "late")]


async def test_claim_wait_gets_a_message_freed_meanwhile(client: httpx.AsyncClient) -> None:
    """A lease that ends and a release delay that passes free a message for a held claim."""
    queue = await make_queue(client)
    await create_group(client, queue, lease_seconds=1)
    posted = await post(client, queue, "x")
    await claim(client, queue)
    (second,) = await claim(client, queue, wait=5)  # the lease ends after 1 s
    assert (second["message_id"], second["deliveries"]) == (posted["key"], 2)
    await release(client, queue, second["receipt"], delay=1)
    (third,) = await claim(client, queue, wait=5)
    assert (third["message_id"], third["deliveries"]) == (posted["key"], 3)


# -- ack ----------------------------------------------------------------------


async def test_acknowledged_messages_are_not_delivered_again(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, lease_seconds=1)
    posted = await post_many(client, queue, 3)
    found = await claim(client, queue)
    assert await ack(client, queue, *receipts(found[:2])) == receipts(found[:2])
    await asyncio.sleep(PAST_LEASE)
    (again,) = await claim(client, queue)
    assert (again["message_id"], again["deliveries"]) == (posted[2]["key"], 2)
    assert await ack(client, queue, again["receipt"]) == [again["receipt"]]
    assert await claim(client, queue) == []


async def test_receipts_of_other_groups_and_queues(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    other_queue = await make_queue(client)
    for q in (queue, other_queue):
        await create_group(client, q)
        await create_group(client, q, "other")
        await post(client, q, "x")
    (mine,) = await claim(client, queue)
    (other_group,) = await claim(client, queue, "other")
    (other_queue_same_group,) = await claim(client, other_queue)
    for foreign in (other_group, other_queue_same_group):
        for action in ("ack", "release", "extend"):
            both = [mine["receipt"], foreign["receipt"]]
            response = await act(client, queue, action, receipts=both)
            assert set(error(response, 400)) == {"receipts"}, action
    # Nothing was done: every lease is still held.
    for q, group in ((queue, "g"), (queue, "other"), (other_queue, "g")):
        state = await group_state(client, q, group)
        assert (state["acknowledged"], part(state)["in_flight"]) == (0, 1)
    assert await ack(client, queue, mine["receipt"]) == [mine["receipt"]]
    assert await ack(client, queue, other_group["receipt"], group="other") == [
        other_group["receipt"]
    ]


async def test_exactly_once_expired_leases_are_lost(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, guarantee="exactly_once", lease_seconds=1)
    posted = await post_many(client, queue, 2)
    expired, kept = await claim(client, queue)
    await extend(client, queue, kept["receipt"], seconds=30)
    await asyncio.sleep(PAST_LEASE)

    # Nothing can be done with the expired lease.
    for action in ("ack", "release", "extend"):
        body = lease_lost(await act(client, queue, action, receipts=[expired["receipt"]]))
        done = {"ack": "acknowledged", "release": "released", "extend": "extended"}[action]
        assert (body[done], body["lost"]) == ([], [expired["receipt"]]), action

    # Mixed: the lost one is reported, the accepted one is acknowledged all the same.
    both = [expired["receipt"], kept["receipt"]]
    body = lease_lost(await act(client, queue, "ack", receipts=both))
    assert (body["acknowledged"], body["lost"]) == ([kept["receipt"]], [expired["receipt"]])
    assert (await group_state(client, queue))["acknowledged"] == 1

    # The expired one is delivered again; only the new receipt counts, and a retry succeeds.
    (again,) = await claim(client, queue)
    assert (again["message_id"], again["deliveries"]) == (posted[0]["key"], 2)
    assert await ack(client, queue, again["receipt"]) == [again["receipt"]]
    assert await ack(client, queue, again["receipt"]) == [again["receipt"]]
    assert await ack(client, queue, kept["receipt"]) == [kept["receipt"]]
    body = lease_lost(await act(client, queue, "ack", receipts=[expired["receipt"]]))
    assert (body["acknowledged"], body["lost"]) == ([], [expired["receipt"]])
    assert await claim(client, queue) == []
    state = await group_state(client, queue)
    assert (state["acknowledged"], state["delivered"], state["redelivered"]) == (2, 3, 1)


async def test_at_least_once_late_acks(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    body = await create_group(client, queue, lease_seconds=1)
    assert body["guarantee"] == "at_least_once"
    posted = await post_many(client, queue, 4)
    late_ack, redelivered, late_release, late_extend = await claim(client, queue)
    await asyncio.sleep(PAST_LEASE)

    # Expired but not leased again since: still accepted.
    assert await ack(client, queue, late_ack["receipt"]) == [late_ack["receipt"]]
    assert await release(client, queue, late_release["receipt"]) == [late_release["receipt"]]
    extended = await extend(client, queue, late_extend["receipt"], seconds=30)
    assert (extended["extended"], extended["lease_seconds"]) == ([late_extend["receipt"]], 30)

    # Leased again: the old receipt is lost, the new one counts.
    again = await claim(client, queue)
    assert [(m["message_id"], m["deliveries"]) for m in again] == [
        (posted[1]["key"], 2),
        (posted[2]["key"], 2),
    ]
    body = lease_lost(await act(client, queue, "ack", receipts=[redelivered["receipt"]]))
    assert (body["acknowledged"], body["lost"]) == ([], [redelivered["receipt"]])
    assert await ack(client, queue, *receipts(again)) == receipts(again)
    # A retried ack succeeds again.
    assert await ack(client, queue, late_ack["receipt"]) == [late_ack["receipt"]]
    assert await ack(client, queue, late_extend["receipt"]) == [late_extend["receipt"]]
    assert await claim(client, queue) == []
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 6, "acknowledged": 4, "redelivered": 2}
    assert (part(state)["pending"], part(state)["in_flight"]) == (0, 0)
    assert part(state)["oldest_pending_age"] is None


async def test_at_most_once(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, consistency="weak")
    body = await create_group(client, queue, lease_seconds=1)
    assert body["guarantee"] == "at_most_once"
    posted = await post_many(client, queue, 3)
    (first,) = await claim(client, queue, limit=1, consumer="w")
    assert (first["message_id"], first["deliveries"]) == (posted[0]["key"], 1)
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 1, "acknowledged": 1}
    assert (part(state)["in_flight"], part(state)["pending"]) == (0, 2)

    await asyncio.sleep(PAST_LEASE)
    # Never delivered again, though never acknowledged; an ack answers 200 all the same.
    assert ids(await claim(client, queue)) == keys(posted[1:])
    assert await claim(client, queue) == []
    assert await ack(client, queue, first["receipt"]) == [first["receipt"]]
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 3, "acknowledged": 3}
    assert (part(state)["in_flight"], part(state)["pending"]) == (0, 0)


# -- release ------------------------------------------------------------------


async def test_release(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    posted = await post(client, queue, "x")
    (first,) = await claim(client, queue)
    assert await release(client, queue, first["receipt"]) == [first["receipt"]]
    # delay 0 (the default): available at once, delivered again.
    (second,) = await claim(client, queue)
    assert (second["message_id"], second["deliveries"]) == (posted["key"], 2)
    assert await release(client, queue, second["receipt"], delay=0) == [second["receipt"]]
    (third,) = await claim(client, queue)
    assert third["deliveries"] == 3

    # The released receipt is lost now: the message was leased again.
    body = lease_lost(await act(client, queue, "release", receipts=[first["receipt"]]))
    assert (body["released"], body["lost"]) == ([], [first["receipt"]])
    both = [third["receipt"], second["receipt"]]
    body = lease_lost(await act(client, queue, "release", receipts=both, delay=1))
    assert (body["released"], body["lost"]) == ([third["receipt"]], [second["receipt"]])

    # delay 1: not available at once, available after it.
    assert await claim(client, queue) == []
    state = await group_state(client, queue)
    assert (part(state)["in_flight"], part(state)["pending"]) == (0, 1)
    await asyncio.sleep(1.2)
    (fourth,) = await claim(client, queue)
    assert (fourth["message_id"], fourth["deliveries"]) == (posted["key"], 4)
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 4, "redelivered": 3}


# -- extend -------------------------------------------------------------------


async def test_extend(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, lease_seconds=1)
    await post_many(client, queue, 2)
    first, second = await claim(client, queue)
    body = await extend(client, queue, first["receipt"], seconds=5)
    assert (body["extended"], body["lease_seconds"]) == ([first["receipt"]], 5)
    await asyncio.sleep(PAST_LEASE)
    # The extended lease outlives the original expiry, the other one does not.
    (again,) = await claim(client, queue)
    assert (again["message_id"], again["deliveries"]) == (second["message_id"], 2)
    assert await ack(client, queue, first["receipt"]) == [first["receipt"]]
    # Without seconds: the group's lease_seconds.
    body = await extend(client, queue, again["receipt"])
    assert (body["extended"], body["lease_seconds"]) == ([again["receipt"]], 1)
    # A lost receipt: 409 with both lists.
    both = [again["receipt"], second["receipt"]]
    body = lease_lost(await act(client, queue, "extend", receipts=both, seconds=60))
    assert (body["extended"], body["lost"]) == ([again["receipt"]], [second["receipt"]])


# -- seek -----------------------------------------------------------------------


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A group state without the parts that move with the clock."""
    partitions = [
        {k: v for k, v in p.items() if k != "oldest_pending_age"} for p in state["partitions"]
    ]
    rest = {k: v for k, v in state.items() if k not in ("partitions", "status")}
    return {**rest, "partitions": partitions}


async def test_seek_earliest_redelivers_acknowledged_messages(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    posted = await post_many(client, queue, 3)
    first = await claim(client, queue, limit=2)
    await ack(client, queue, *receipts(first))
    (leased,) = await claim(client, queue)
    await release(client, queue, leased["receipt"])
    (leased,) = await claim(client, queue)
    assert leased["deliveries"] == 2

    answer = await seek(client, queue, to="earliest")
    assert comparable(answer) == comparable(await group_state(client, queue))
    assert normal(settings_of(answer)) == defaults()
    assert (part(answer)["in_flight"], part(answer)["pending"]) == (0, 3)
    assert part(answer)["consumers"] == []
    cursor_not_after(part(answer)["cursor"], posted[0])

    # Every lease ended: the old receipts are lost; everything comes again from 1.
    body = lease_lost(await act(client, queue, "ack", receipts=[leased["receipt"]]))
    assert (body["acknowledged"], body["lost"]) == ([], [leased["receipt"]])
    again = await claim(client, queue)
    assert [(m["message_id"], m["deliveries"]) for m in again] == [(k, 1) for k in keys(posted)]
    assert await ack(client, queue, *receipts(again)) == receipts(again)


async def test_seek_latest(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue)
    await post(client, queue, "a", x_partition="1")
    await post(client, queue, "b", x_partition="2")
    (leased, _) = await claim(client, queue, limit=10)
    answer = await seek(client, queue, to="latest")
    assert [(p["partition"], p["pending"], p["in_flight"]) for p in answer["partitions"]] == [
        (1, 0, 0),
        (2, 0, 0),
    ]
    assert lease_lost(await act(client, queue, "ack", receipts=[leased["receipt"]]))["lost"] == [
        leased["receipt"]
    ]
    assert await claim(client, queue) == []
    posted = await post(client, queue, "new", x_partition="2")
    assert ids(await claim(client, queue)) == [posted["key"]]


async def test_seek_to_an_id_or_a_timestamp_in_some_partitions(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue)
    ones = [await post(client, queue, f"a{i}", x_partition="1") for i in range(3)]
    twos = [await post(client, queue, f"b{i}", x_partition="2") for i in range(3)]
    await ack(client, queue, *receipts(await claim(client, queue)))
    assert await claim(client, queue) == []

    await seek(client, queue, to=ones[1]["key"], partitions=[1, 7])
    assert ids(await claim(client, queue)) == keys(ones[1:])
    await seek(client, queue, to=twos[2]["timestamp"], partitions=[2])
    found = await claim(client, queue)
    assert [(m["message_id"], m["deliveries"]) for m in found] == [(twos[2]["key"], 1)]
    # A seek ends the leases of its partitions only.
    answer = await seek(client, queue, to="earliest", partitions=[2])
    assert part(answer, 1)["in_flight"] == 2
    assert (part(answer, 2)["in_flight"], part(answer, 2)["pending"]) == (0, 3)
    assert ids(await claim(client, queue)) == keys(twos)


async def test_seek_by_a_consumer(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, principles="app:app2")
    await create_group(client, queue)
    posted = await post(client, queue, "x")
    (first,) = await claim(client, queue, headers=APP2)
    await act(client, queue, "ack", headers=APP2, receipts=[first["receipt"]])
    response = await act(client, queue, "seek", headers=APP2, to="earliest")
    assert part(ok(response))["pending"] == 1
    assert ids(await claim(client, queue, headers=APP2)) == [posted["key"]]


# -- start ------------------------------------------------------------------------

GROUPS = ("earliest", "default-start", "latest", "by-id", "by-time")


async def test_start(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    posted = await post_many(client, queue, 3)
    await create_group(client, queue, "earliest")
    await create_group(client, queue, "default-start", start=None)
    await create_group(client, queue, "latest", start="latest")
    await create_group(client, queue, "by-id", start=posted[1]["key"])
    await create_group(client, queue, "by-time", start=posted[2]["timestamp"])
    response = await client.put(url(queue, "form"), data={"start": posted[1]["key"]}, headers=APP1)
    ok(response, 201)
    pending = {g: part(await group_state(client, queue, g))["pending"] for g in GROUPS}
    assert pending == {"earliest": 3, "default-start": 3, "latest": 0, "by-id": 2, "by-time": 1}
    later = await post(client, queue, "later")
    everything = [*keys(posted), later["key"]]
    assert ids(await claim(client, queue, "earliest")) == everything
    assert ids(await claim(client, queue, "default-start")) == everything
    assert ids(await claim(client, queue, "latest")) == [later["key"]]
    assert ids(await claim(client, queue, "by-id")) == everything[1:]
    assert ids(await claim(client, queue, "form")) == everything[1:]
    assert ids(await claim(client, queue, "by-time")) == everything[2:]


async def test_partitions_added_later_start_at_their_beginning(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await post(client, queue, "old")
    await create_group(client, queue, start="latest")
    ok(await client.put(f"/v1/app1/{queue}", json={"partitions": 2}, headers=APP1))
    two = [await post(client, queue, f"b{i}", x_partition="2") for i in range(2)]
    assert ids(await claim(client, queue)) == keys(two)
    state = await group_state(client, queue)
    assert [p["partition"] for p in state["partitions"]] == [1, 2]


# -- state ----------------------------------------------------------------------


async def test_state_in_a_scripted_scenario(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    state = await group_state(client, queue)
    assert counters(state) == ZERO
    assert [p["partition"] for p in state["partitions"]] == [1]
    assert part(state) == {
        **part(state),
        "in_flight": 0,
        "pending": 0,
        "oldest_pending_age": None,
        "consumers": [],
    }

    posted = await post_many(client, queue, 5)
    state = await group_state(client, queue)
    assert (part(state)["pending"], part(state)["in_flight"]) == (5, 0)
    age = part(state)["oldest_pending_age"]
    assert isinstance(age, int | float) and 0 <= age < 60

    first = await claim(client, queue, limit=3, consumer="w1")
    assert ids(first) == keys(posted[:3])
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 3}
    assert part(state)["consumers"] == ["w1"]
    assert (part(state)["pending"], part(state)["in_flight"]) == (5, 3)

    await ack(client, queue, *receipts(first[:2]))
    await release(client, queue, first[2]["receipt"])
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 3, "acknowledged": 2}
    assert (part(state)["pending"], part(state)["in_flight"]) == (3, 0)
    assert part(state)["consumers"] == []
    cursor_not_after(part(state)["cursor"], posted[2])

    second = await claim(client, queue, consumer="w2")
    assert [(m["message_id"], m["deliveries"]) for m in second] == [
        (posted[2]["key"], 2),
        (posted[3]["key"], 1),
        (posted[4]["key"], 1),
    ]
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 6, "acknowledged": 2, "redelivered": 1}
    assert (part(state)["pending"], part(state)["in_flight"]) == (3, 3)
    assert part(state)["consumers"] == ["w2"]

    await ack(client, queue, *receipts(second))
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 6, "acknowledged": 5, "redelivered": 1}
    assert part(state) == {
        **part(state),
        "in_flight": 0,
        "pending": 0,
        "oldest_pending_age": None,
        "consumers": [],
    }


async def test_expired_messages(client: httpx.AsyncClient, backend_url: str) -> None:
    """Messages whose TTL ends while pending: no longer pending, counted in ``expired``.

    On Cassandra a message is gone the moment its TTL ends (native TTL), so a
    message that expired before the group ever leased it cannot be counted
    there (docs/groups-cassandra.md); every other assertion holds on both.
    """
    seen_expired = 0 if backend_url.startswith("cassandra") else 1
    queue = await make_queue(client)
    await create_group(client, queue)
    await post(client, queue, "short", x_ttl="1")
    await create_group(client, queue, "late", start="latest")
    kept = await post(client, queue, "kept")
    await asyncio.sleep(PAST_LEASE)
    state = await group_state(client, queue)
    assert part(state)["pending"] == 1
    # The oldest pending message is "kept", posted about 1.3 s ago.
    age = part(state)["oldest_pending_age"]
    assert isinstance(age, int | float) and 1.2 <= age < 60, age
    assert counters(state) == {**ZERO, "expired": seen_expired}
    assert ids(await claim(client, queue)) == [kept["key"]]
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 1, "expired": seen_expired}
    # Only messages at or after the group's start count.
    assert ids(await claim(client, queue, "late")) == [kept["key"]]
    assert counters(await group_state(client, queue, "late")) == {**ZERO, "delivered": 1}


# -- max_deliveries and the dead letter queue -------------------------------------


async def test_dead_letter_queue(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    dead = await make_queue(client)
    await create_group(client, queue, lease_seconds=1, max_deliveries=2, dead_letter_queue=dead)
    posted = await post(client, queue, "poison", content_type="application/x-poison")
    assert len(await claim(client, queue)) == 1
    await asyncio.sleep(PAST_LEASE)
    (second,) = await claim(client, queue)
    assert (second["message_id"], second["deliveries"]) == (posted["key"], 2)
    await asyncio.sleep(PAST_LEASE)

    assert await claim(client, queue) == []
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 2, "redelivered": 1, "dead_lettered": 1}
    assert (part(state)["pending"], part(state)["in_flight"]) == (0, 0)
    letters = await read(client, dead)
    assert [(m["body"], m["content_type"]) for m in letters] == [("poison", "application/x-poison")]
    # The queue keeps the message: groups and range readers are independent.
    assert ids(await read(client, queue)) == [posted["key"]]
    assert await claim(client, queue) == []


async def test_dropped_without_a_dead_letter_queue(client: httpx.AsyncClient) -> None:
    """A release counts as a failed delivery."""
    queue = await make_queue(client)
    await create_group(client, queue, max_deliveries=2)
    posted = await post_many(client, queue, 2)
    (first,) = await claim(client, queue, limit=1)
    await release(client, queue, first["receipt"])
    (second,) = await claim(client, queue, limit=1)
    assert (second["message_id"], second["deliveries"]) == (posted[0]["key"], 2)
    await release(client, queue, second["receipt"])
    (other,) = await claim(client, queue)
    assert other["message_id"] == posted[1]["key"]
    assert await claim(client, queue) == []
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 3, "redelivered": 1, "dropped": 1}
    assert part(state)["pending"] == 1
    assert ids(await read(client, queue)) == keys(posted)


async def test_dead_letter_queue_gone(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    dead = await make_queue(client)
    await create_group(client, queue, max_deliveries=1, dead_letter_queue=dead)
    await post(client, queue, "x")
    ok(await client.delete(f"/v1/app1/{dead}", headers=APP1))
    (first,) = await claim(client, queue)
    await release(client, queue, first["receipt"])
    assert await claim(client, queue) == []
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 1, "dropped": 1}
    assert part(state)["pending"] == 0


async def test_acknowledged_on_the_last_delivery_is_kept(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    dead = await make_queue(client)
    await create_group(client, queue, max_deliveries=1, dead_letter_queue=dead)
    await post(client, queue, "x")
    (first,) = await claim(client, queue)
    assert await ack(client, queue, first["receipt"]) == [first["receipt"]]
    state = await group_state(client, queue)
    assert counters(state) == {**ZERO, "delivered": 1, "acknowledged": 1}
    assert await read(client, dead) == []


# -- ordered ----------------------------------------------------------------------


async def test_ordered(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue, ordered=True)
    ones = [await post(client, queue, f"a{i}", x_partition="1") for i in range(3)]
    two = await post(client, queue, "b", x_partition="2")

    (a0,) = await claim(client, queue, partitions=[1], limit=1)
    assert a0["message_id"] == ones[0]["key"]
    # While a message of partition 1 is leased, other claims get only other partitions.
    assert ids(await claim(client, queue)) == [two["key"]]
    assert await claim(client, queue) == []
    assert await claim(client, queue, partitions=[1]) == []

    # One claim may take several consecutive messages of a partition.
    await ack(client, queue, a0["receipt"])
    a1, a2 = await claim(client, queue, partitions=[1])
    assert ids([a1, a2]) == keys(ones[1:])
    assert await claim(client, queue) == []

    # A message released with a delay holds its partition back until delivered again.
    await ack(client, queue, a1["receipt"])
    await release(client, queue, a2["receipt"], delay=1)
    later = await post(client, queue, "a3", x_partition="1")
    assert await claim(client, queue) == []
    await asyncio.sleep(1.2)
    (again,) = await claim(client, queue, limit=1)
    assert (again["message_id"], again["deliveries"]) == (ones[2]["key"], 2)
    assert await claim(client, queue) == []
    await ack(client, queue, again["receipt"])
    assert ids(await claim(client, queue)) == [later["key"]]


# -- independence -----------------------------------------------------------------


async def test_groups_are_independent(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue, "one")
    await create_group(client, queue, "two", guarantee="exactly_once")
    posted = await post_batch(
        client, queue, *[{"body": f"m{i}", "partition": 1 + i % 2} for i in range(4)]
    )
    one = await claim(client, queue, "one")
    two = await claim(client, queue, "two")
    assert sorted(ids(one)) == sorted(ids(two)) == sorted(keys(posted))
    await ack(client, queue, *receipts(one), group="one")
    state = await group_state(client, queue, "two")
    assert (state["acknowledged"], part(state, 1)["in_flight"], part(state, 2)["in_flight"]) == (
        0,
        2,
        2,
    )
    # Range readers see every message, acknowledged or leased.
    assert len(await read(client, queue, partitions="1,2")) == 4
    # A group created later still gets every message.
    await create_group(client, queue, "three")
    assert sorted(ids(await claim(client, queue, "three"))) == sorted(keys(posted))
    assert await claim(client, queue, "one") == []
    await seek(client, queue, "one", to="earliest")
    assert len(await claim(client, queue, "one")) == 4
    assert (await group_state(client, queue, "two"))["delivered"] == 4


async def test_same_group_name_on_two_queues(client: httpx.AsyncClient) -> None:
    first = await make_queue(client)
    second = await make_queue(client)
    await create_group(client, first, lease_seconds=5)
    await create_group(client, second, lease_seconds=6)
    posted = await post(client, first, "x")
    assert ids(await claim(client, first)) == [posted["key"]]
    assert await claim(client, second) == []
    assert (await group_state(client, second))["lease_seconds"] == 6


# -- deleted messages -------------------------------------------------------------


async def test_deleted_messages_are_not_delivered(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    posted = await post_many(client, queue, 3)
    ok(await client.delete(f"/v1/app1/{queue}/{posted[1]['key']}", headers=APP1))
    assert ids(await claim(client, queue)) == [posted[0]["key"], posted[2]["key"]]


# -- acknowledge and publish in one step ------------------------------------------


async def test_ack_and_publish(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    out = await make_queue(client, partitions=2)
    await create_group(client, queue)
    await post(client, queue, "in")
    (message,) = await claim(client, queue)
    publish = [
        {"queue": out, "body": "t1", "partition": 2, "content_type": "application/x-t"},
        {"queue": out, "body": "t2", "partition": "1", "ttl": 60},
    ]
    response = await act(client, queue, "ack", receipts=[message["receipt"]], publish=publish)
    body = ok(response)
    assert body["acknowledged"] == [message["receipt"]]
    published = body["published"]
    assert [p["partition"] for p in published] == [2, 1]
    found = {m["message_id"]: m for m in await read(client, out, partitions="1,2")}
    assert sorted(found) == sorted(keys(published))
    assert [
        (found[p["key"]]["body"], found[p["key"]]["content_type"], found[p["key"]]["timestamp"])
        for p in published
    ] == [("t1", "application/x-t", published[0]["timestamp"]), ("t2", "text/plain", ANY)]
    assert (await group_state(client, queue))["acknowledged"] == 1

    # Acknowledged before: nothing is published again, the answer is the first one.
    again = ok(await act(client, queue, "ack", receipts=[message["receipt"]], publish=publish))
    assert (again["acknowledged"], again["published"]) == (body["acknowledged"], published)
    assert len(await read(client, out, partitions="1,2")) == 2


async def test_ack_and_publish_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    out = await make_queue(client)
    await create_group(client, queue)
    await post_many(client, queue, 2)
    first, kept = await claim(client, queue)
    await release(client, queue, first["receipt"])
    (again,) = await claim(client, queue)  # the first receipt is lost now
    both = [first["receipt"], kept["receipt"]]
    response = await act(client, queue, "ack", receipts=both, publish=[{"queue": out, "body": "x"}])
    body = lease_lost(response)
    assert (body["acknowledged"], body["lost"]) == ([], [first["receipt"]])
    # Nothing happened: nothing published, the accepted receipt not acknowledged.
    assert await read(client, out) == []
    state = await group_state(client, queue)
    assert (state["acknowledged"], part(state)["in_flight"]) == (0, 2)
    assert await ack(client, queue, kept["receipt"], again["receipt"]) == [
        kept["receipt"],
        again["receipt"],
    ]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([{"queue": "nosuch", "body": "x"}], {"publish.0.queue": ANY}),
        ([{"body": "x"}], {"publish.0.queue": ANY}),
        ([{"queue": "{out}", "body": ""}], {"publish.0.body": ANY}),
        ([{"queue": "{out}", "body": "x", "partition": 3}], {"publish.0.partition": ANY}),
        (
            [{"queue": "{out}", "body": "x"}, {"queue": "{out}", "body": "y", "ttl": 0}],
            {"publish.1.ttl": "0 is less than minimum value 1"},
        ),
    ],
    ids=["unknown-queue", "no-queue", "empty-body", "partition", "second-item-ttl"],
)
async def test_ack_and_publish_validation(
    client: httpx.AsyncClient, items: list[dict[str, Any]], expected: dict[str, str]
) -> None:
    queue = await make_queue(client)
    out = await make_queue(client, partitions=2)
    await create_group(client, queue)
    await post(client, queue, "x")
    (message,) = await claim(client, queue)
    publish = [{k: out if v == "{out}" else v for k, v in item.items()} for item in items]
    response = await act(client, queue, "ack", receipts=[message["receipt"]], publish=publish)
    assert error(response, 400) == expected
    assert await read(client, out, partitions="1,2") == []
    state = await group_state(client, queue)
    assert (state["acknowledged"], part(state)["in_flight"]) == (0, 1)


async def test_ack_and_publish_needs_the_application(client: httpx.AsyncClient) -> None:
    """The target is a queue of the group's application; the caller must be that application."""
    queue = await make_queue(client, principles="app:app2")
    out = await make_queue(client)
    await create_group(client, queue)
    await post_many(client, queue, 2)
    first, second = await claim(client, queue, headers=APP2)
    publish = [{"queue": out, "body": "x"}]
    response = await act(
        client, queue, "ack", headers=APP2, receipts=[first["receipt"]], publish=publish
    )
    assert error(response, 403) == DENIED
    assert await read(client, out) == []
    assert (await group_state(client, queue))["acknowledged"] == 0
    # app2 and app1 together may.
    both_apps = auth("key2", "key1")
    response = await act(
        client, queue, "ack", headers=both_apps, receipts=[first["receipt"]], publish=publish
    )
    assert ok(response)["acknowledged"] == [first["receipt"]]
    assert len(await read(client, out)) == 1
    response = await act(client, queue, "ack", headers=APP2, receipts=[second["receipt"]])
    assert ok(response)["acknowledged"] == [second["receipt"]]


# -- durability -------------------------------------------------------------------


def test_group_state_survives_sigkill(tmp_path: Path, serve: type[Server]) -> None:
    """at_least_once: leases, receipts, acknowledgements and counters survive a SIGKILL."""
    config = write_config(tmp_path / "queuey.toml", f"sqlite:///{tmp_path / 'q.db'}", free_port())
    server = serve(config).start()
    base = f"{server.url}/v1/app1"
    with httpx.Client(base_url=base, headers=APP1, timeout=10) as http:
        ok(http.post("", json={"queue_name": "q"}), 201)
        ok(http.put("/q/groups/g", json={}), 201)
        posted = [
            ok(http.post("/q", content=f"m{i}".encode()), 201)["messages"][0] for i in range(3)
        ]
        first, second = ok(http.post("/q/groups/g/claim", json={"limit": 2}))["messages"]
        ok(http.post("/q/groups/g/ack", json={"receipts": [first["receipt"]]}))
    server.kill()

    server = serve(config).start()
    with httpx.Client(base_url=f"{server.url}/v1/app1", headers=APP1, timeout=10) as http:
        state = ok(http.get("/q/groups/g"))
        assert counters(state) == {**ZERO, "delivered": 2, "acknowledged": 1}
        assert (part(state)["pending"], part(state)["in_flight"]) == (2, 1)
        # The live lease still holds; its receipt still works.
        (third,) = ok(http.post("/q/groups/g/claim", json={}))["messages"]
        assert third["message_id"] == posted[2]["key"]
        answer = ok(http.post("/q/groups/g/ack", json={"receipts": [second["receipt"]]}))
        assert answer["acknowledged"] == [second["receipt"]]
        # A retried ack of the receipt acknowledged before the kill succeeds again.
        answer = ok(http.post("/q/groups/g/ack", json={"receipts": [first["receipt"]]}))
        assert answer["acknowledged"] == [first["receipt"]]


# -- more edges -------------------------------------------------------------------


async def test_ordered_edges(client: httpx.AsyncClient) -> None:
    """A partition stays held while any of a claim's messages is leased; a released or
    dead-lettered message frees it in order."""
    queue = await make_queue(client)
    await create_group(client, queue, ordered=True, max_deliveries=2)
    posted = await post_many(client, queue, 4)
    a0, a1 = await claim(client, queue, limit=2)
    assert ids([a0, a1]) == keys(posted[:2])
    await ack(client, queue, a0["receipt"])
    assert await claim(client, queue) == []  # a1 still leased
    await release(client, queue, a1["receipt"])
    # Released without delay: the same message comes first again.
    (again,) = await claim(client, queue, limit=1)
    assert (again["message_id"], again["deliveries"]) == (posted[1]["key"], 2)
    cursor_not_after(part(await group_state(client, queue))["cursor"], posted[1])
    # Its last delivery fails: dropped, and the partition moves on.
    await release(client, queue, again["receipt"])
    assert ids(await claim(client, queue)) == keys(posted[2:])
    state = await group_state(client, queue)
    assert counters(state) == {
        **ZERO,
        "delivered": 5,
        "acknowledged": 1,
        "redelivered": 1,
        "dropped": 1,
    }


async def test_ordered_lease_expiry_redelivers_in_order(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, ordered=True, lease_seconds=1)
    posted = await post_many(client, queue, 2)
    (first,) = await claim(client, queue, limit=1)
    await asyncio.sleep(PAST_LEASE)
    found = await claim(client, queue)
    assert [(m["message_id"], m["deliveries"]) for m in found] == [
        (posted[0]["key"], 2),
        (posted[1]["key"], 1),
    ]
    assert lease_lost(await act(client, queue, "ack", receipts=[first["receipt"]]))["lost"] == [
        first["receipt"]
    ]


async def test_exactly_once_seek_loses_live_leases(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, consistency="very_strong")
    await create_group(client, queue)
    posted = await post(client, queue, "x")
    (first,) = await claim(client, queue)
    await seek(client, queue, to=0)
    for action in ("ack", "release", "extend"):
        assert lease_lost(await act(client, queue, action, receipts=[first["receipt"]]))[
            "lost"
        ] == [first["receipt"]], action
    (again,) = await claim(client, queue)
    assert (again["message_id"], again["deliveries"]) == (posted["key"], 1)
    assert await ack(client, queue, again["receipt"]) == [again["receipt"]]
    await seek(client, queue, to="0")
    assert ids(await claim(client, queue)) == [posted["key"]]


async def test_group_names_are_case_sensitive(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue, "g", lease_seconds=5)
    await create_group(client, queue, "G", lease_seconds=6)
    assert [(g["group"], g["lease_seconds"]) for g in await list_groups(client, queue)] == [
        ("G", 6),
        ("g", 5),
    ]


async def test_methods_not_allowed(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    await create_group(client, queue)
    for method, path in [
        ("GET", url(queue, "g", "claim")),
        ("PUT", url(queue, "g", "ack")),
        ("DELETE", url(queue, "g", "seek")),
        ("POST", url(queue)),
        ("POST", url(queue, None)),
        ("DELETE", url(queue, None)),
    ]:
        response = await client.request(method, path, headers=APP1)
        assert set(error(response, 405)) == {"MethodNotAllowed"}, (method, path)
    assert (await group_state(client, queue))["group"] == "g"


async def test_trailing_slashes_on_actions(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    ok(await client.put(url(queue) + "/", json={}, headers=APP1), 201)
    posted = await post(client, queue, "x")
    response = await client.post(url(queue, "g", "claim") + "/", json={}, headers=APP1)
    (message,) = ok(response)["messages"]
    assert message["message_id"] == posted["key"]
    response = await client.post(
        f"/v1/app1/{queue}//groups//g/ack/", json={"receipts": [message["receipt"]]}, headers=APP1
    )
    assert ok(response)["acknowledged"] == [message["receipt"]]


async def test_dead_letters_need_no_further_claim(client: httpx.AsyncClient) -> None:
    """SPEC: when its last lease ends the message is copied to the dead letter queue, counted
    in the state and no longer pending: visible at once, not only after another claim."""
    queue = await make_queue(client)
    dead = await make_queue(client)
    await create_group(client, queue, lease_seconds=1, max_deliveries=1, dead_letter_queue=dead)
    await post(client, queue, "poison")
    assert len(await claim(client, queue)) == 1
    await asyncio.sleep(PAST_LEASE)
    state = await group_state(client, queue)
    assert (part(state)["pending"], part(state)["in_flight"]) == (0, 0)
    assert counters(state) == {**ZERO, "delivered": 1, "dead_lettered": 1}
    assert [m["body"] for m in await read(client, dead)] == ["poison"]


async def test_a_held_claim_keeps_waiting_when_another_takes_the_message(
    client: httpx.AsyncClient,
) -> None:
    """An empty list means nothing was available by the end of ``wait``."""
    queue = await make_queue(client, partitions=2)
    await create_group(client, queue)

    async def timed_claim(**fields: Any) -> tuple[list[dict[str, Any]], float]:
        started = time.monotonic()
        found = await claim(client, queue, **fields)
        return found, time.monotonic() - started

    async def post_later(partition: int) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return await post(client, queue, "x", x_partition=str(partition))

    # A message in another partition does not end the wait.
    (found, elapsed), _ = await asyncio.gather(timed_claim(partitions=[1], wait=1), post_later(2))
    assert found == []
    assert elapsed >= 0.9
    # Two held claims, one message: one gets it, the other waits out its time.
    first, second, posted = await asyncio.gather(
        timed_claim(partitions=[1], wait=1), timed_claim(partitions=[1], wait=1), post_later(1)
    )
    (got, _), (empty, waited) = sorted(
        [first, second], key=lambda answer: len(answer[0]), reverse=True
    )
    assert ids(got) == [posted["key"]]
    assert empty == []
    assert waited >= 0.9
