"""Authentication and access rules through HTTP (SPEC.md §2)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from queuey.api.app import create_app
from queuey.config import Settings
from tests.api_support import error, ok, post, read
from tests.conftest import APP1, APP2, auth, make_queue

DENIED = {"AccessDenied": "Access was denied to this resource."}
ANONYMOUS: dict[str, str] = {}
APP3 = auth("key3a")
MISSING_ID = "6b63a18fea0011f18b4e71c5f9abafa9"

#: Every /v1 resource and method; ``{q}`` is an existing queue of app1, ``{id}`` a message in it.
RESOURCES = [
    ("GET", "/v1/app1"),
    ("HEAD", "/v1/app1"),
    ("POST", "/v1/app1"),
    ("GET", "/v1/app1/{q}"),
    ("HEAD", "/v1/app1/{q}"),
    ("POST", "/v1/app1/{q}"),
    ("PUT", "/v1/app1/{q}"),
    ("DELETE", "/v1/app1/{q}"),
    ("GET", "/v1/app1/{q}/{id}"),
    ("HEAD", "/v1/app1/{q}/{id}"),
    ("PUT", "/v1/app1/{q}/{id}"),
    ("DELETE", "/v1/app1/{q}/{id}"),
]
#: Resources that need no queue of app1; unknown applications and queues included.
ANYWHERE = [
    *RESOURCES,
    ("GET", "/v1/nobody"),
    ("POST", "/v1/nobody/q"),
    ("DELETE", "/v1/app1/nosuchqueue"),
    ("GET", "/v1/app1/nosuchqueue/{id}"),
]


@pytest.fixture
async def target(client: httpx.AsyncClient) -> tuple[str, str]:
    """app1's queue ``target`` (two partitions) holding one message; its name and that id."""
    name = await make_queue(client, queue_name="target", partitions=2)
    return name, (await post(client, name, "kept", x_partition="1"))["key"]


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    target: tuple[str, str] = ("target", MISSING_ID),
    content: bytes | None = None,
) -> httpx.Response:
    """One request; writes carry a small body that would be valid for any of them."""
    if content is None and method in ("POST", "PUT"):
        content = b"partitions=2" if path.count("/") == 2 else b"changed"
    url = path.format(q=target[0], id=target[1])
    return await client.request(method, url, content=content, headers=headers)


async def unchanged(client: httpx.AsyncClient, target: tuple[str, str]) -> None:
    """app1 still has exactly ``target`` with its settings and its one message."""
    listing = await client.get("/v1/app1", params={"details": "1"}, headers=APP1)
    (queue,) = ok(listing)["queues"]
    assert (queue["queue_name"], queue["partitions"]) == ("target", 2)
    found = await read(client, "target", partitions="1,2")
    assert [(m["message_id"], m["body"]) for m in found] == [(target[1], "kept")]


# -- 401 ----------------------------------------------------------------------


UNKNOWN_KEYS = [
    "Application wrong",
    "Application key1; Application wrong",
    "application wrong; Application key1",
    "Bearer key1; APPLICATION wrong",
    "Application ",
]


@pytest.mark.parametrize(("method", "path"), ANYWHERE)
async def test_unknown_key_is_401(
    client: httpx.AsyncClient, target: tuple[str, str], method: str, path: str
) -> None:
    for header in UNKNOWN_KEYS:
        response = await send(client, method, path, {"Authorization": header}, target)
        assert response.status_code == 401, header
        if method != "HEAD":
            assert set(error(response, 401)) == {"InvalidApplicationKey"}
    await unchanged(client, target)


async def test_several_authorization_headers_count_as_one(
    client: httpx.AsyncClient, target: tuple[str, str]
) -> None:
    """Several Authorization headers are one joined with ";": an unknown key in any is 401."""
    for second in ("Application wrong", "Basic x; Application wrong"):
        headers = [("Authorization", "Application key1"), ("Authorization", second)]
        response = await client.get("/v1/app1", headers=headers)
        assert set(error(response, 401)) == {"InvalidApplicationKey"}, second
    # A key in a second header counts too.
    headers = [("Authorization", "Basic dXNlcjpwdw=="), ("Authorization", "Application key1")]
    listed = ok(await client.get("/v1/app1", headers=headers))["queues"]
    assert listed == [{"queue_name": "target"}]
    await unchanged(client, target)


@pytest.mark.parametrize(
    "path", ["/__heartbeat__", "/__lbheartbeat__", "/__version__", "/openapi.json"]
)
async def test_operations_ignore_authorization(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Authorization": "Application wrong"})
    assert response.status_code == 200


# -- 403 ----------------------------------------------------------------------


#: A scheme Queuey does not know is ignored (a bearer token is checked: tests/test_people.py).
OTHERS = [ANONYMOUS, APP2, APP3, auth("key3a", "key3b", "key2"), {"Authorization": "Basic key1"}]


@pytest.mark.parametrize(("method", "path"), RESOURCES)
async def test_another_application_is_denied(
    client: httpx.AsyncClient, target: tuple[str, str], method: str, path: str
) -> None:
    for headers in OTHERS:
        response = await send(client, method, path, headers, target)
        assert response.status_code == 403, headers
        if method != "HEAD":
            assert error(response, 403) == DENIED
    await unchanged(client, target)


async def test_queues_belong_to_their_application(
    client: httpx.AsyncClient, target: tuple[str, str]
) -> None:
    """app2's key names app1's queue only under /v1/app1, where it is denied."""
    name, key = target
    for url in (f"/v1/app2/{name}", f"/v1/app2/{name}/{key}"):
        response = await client.get(url, headers=APP2)
        assert error(response, 404) == {"InvalidQueueName": "Queue of that name was not found."}
    assert ok(await client.get("/v1/app2", headers=APP2))["queues"] == []


# -- credentials ---------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Application key1",
        "application key1",
        "APPLICATION key1",
        "ApPlIcAtIoN   key1  ",
        "Application key2; Application key1",
        "Application key1;Application key3a",
        "Digest abc; Application key1",
        "Basic dXNlcjpwdw==;Application key1; Negotiate",
    ],
)
async def test_credentials_that_open_app1(
    client: httpx.AsyncClient, target: tuple[str, str], header: str
) -> None:
    headers = {"Authorization": header}
    assert ok(await client.get("/v1/app1", headers=headers))["queues"] == [{"queue_name": "target"}]
    assert len(await read(client, target[0], headers=headers)) == 1
    assert (await client.post("/v1/app1/target", content=b"x", headers=headers)).status_code == 201


async def test_application_with_two_keys(client: httpx.AsyncClient) -> None:
    for headers in (auth("key3a"), auth("key3b"), auth("key3a", "key3b")):
        response = await client.get("/v1/app3", headers=headers)
        assert ok(response)["queues"] == []


@pytest.fixture
async def hashed_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with app1's key configured as a SHA-256 digest (app2's in upper-case hex)."""
    keys = {
        "app1": ("sha256:" + hashlib.sha256(b"s3cret").hexdigest(),),
        "app2": ("sha256:" + hashlib.sha256(b"k2").hexdigest().upper(),),
        "app3": ("plain",),
    }
    app = create_app(settings.replace(application_keys=keys))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as c:
            yield c


@pytest.mark.parametrize(
    ("app", "key", "status"),
    [
        ("app1", "s3cret", 200),
        ("app2", "k2", 200),
        ("app3", "plain", 200),
        ("app1", hashlib.sha256(b"s3cret").hexdigest(), 401),  # the digest is no key
        ("app1", "sha256:" + hashlib.sha256(b"s3cret").hexdigest(), 401),
        ("app1", "key1", 401),
    ],
)
async def test_hashed_keys(
    hashed_client: httpx.AsyncClient, app: str, key: str, status: int
) -> None:
    response = await hashed_client.get(
        f"/v1/{app}", headers={"Authorization": f"Application {key}"}
    )
    assert response.status_code == status, response.text


# -- principles and public queues --------------------------------------------

#: (queue fields, caller, may read, may delete messages)
RIGHTS: list[tuple[dict[str, Any], dict[str, str], bool, bool]] = [
    ({}, APP1, True, True),
    ({}, APP2, False, False),
    ({}, ANONYMOUS, False, False),
    ({"principles": "app:app2"}, APP1, False, False),
    ({"principles": "app:app2"}, APP2, True, True),
    ({"principles": "app:app2"}, APP3, False, False),
    ({"principles": "app:app2"}, ANONYMOUS, False, False),
    ({"principles": "app:app2,app:app1"}, APP1, True, True),
    ({"principles": "app:app2,app:app1"}, APP2, True, True),
    ({"principles": "app:app3,app:app2"}, auth("key3b"), True, True),
    ({"principles": "bid:someone@example.com"}, APP1, False, False),
    ({"principles": "bid:someone@example.com"}, ANONYMOUS, False, False),
    ({"type": "public"}, ANONYMOUS, True, False),
    ({"type": "public"}, APP2, True, False),
    ({"type": "public"}, APP1, True, True),
    ({"type": "public", "principles": "app:app2"}, ANONYMOUS, True, False),
    ({"type": "public", "principles": "app:app2"}, APP1, True, False),
    ({"type": "public", "principles": "app:app2"}, APP2, True, True),
]


@pytest.mark.parametrize(("fields", "caller", "may_read", "may_delete"), RIGHTS)
async def test_reading_and_deleting_messages(
    client: httpx.AsyncClient,
    fields: dict[str, Any],
    caller: dict[str, str],
    may_read: bool,
    may_delete: bool,
) -> None:
    name = await make_queue(client, **fields)
    key = (await post(client, name, "secret"))["key"]
    reads = [
        await client.get(f"/v1/app1/{name}", headers=caller),
        await client.get(f"/v1/app1/{name}/{key}", headers=caller),
        await client.get(f"/v1/app1/{name}/1:{key}", params={"x": "y"}, headers=caller),
    ]
    for response in reads:
        if may_read:
            assert [m["body"] for m in ok(response)["messages"]] == ["secret"]
        else:
            assert error(response, 403) == DENIED
    deleted = await client.delete(f"/v1/app1/{name}/{key}", headers=caller)
    if may_delete:
        assert ok(deleted) == {"status": "ok"}
    else:
        assert error(deleted, 403) == DENIED
    # The owner makes the queue its own again to see what is left.
    ok(await client.put(f"/v1/app1/{name}", json={"principles": ""}, headers=APP1))
    assert len(await read(client, name)) == (0 if may_delete else 1)


@pytest.mark.parametrize(
    "fields", [{"principles": "app:app2"}, {"type": "public", "principles": "app:app2"}]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/app1"),
        ("POST", "/v1/app1"),
        ("POST", "/v1/app1/{q}"),
        ("PUT", "/v1/app1/{q}"),
        ("DELETE", "/v1/app1/{q}"),
        ("PUT", "/v1/app1/{q}/{id}"),
    ],
)
async def test_principles_grant_no_owner_rights(
    client: httpx.AsyncClient, fields: dict[str, Any], method: str, path: str
) -> None:
    name = await make_queue(client, queue_name="target", partitions=2, **fields)
    key = (await post(client, name, "kept", x_partition="1"))["key"]
    for caller in (APP2, ANONYMOUS):
        response = await send(client, method, path, caller, (name, key))
        assert error(response, 403) == DENIED
    ok(await client.put(f"/v1/app1/{name}", json={"principles": "", "type": "user"}, headers=APP1))
    await unchanged(client, (name, key))


async def test_owner_keeps_owner_rights_when_not_listed(client: httpx.AsyncClient) -> None:
    name = await make_queue(client, principles="app:app2")
    key = (await post(client, name, "v1"))["key"]
    ok(await client.put(f"/v1/app1/{name}/{key}", content=b"v2", headers=APP1))
    body = ok(await client.put(f"/v1/app1/{name}", json={"partitions": 2}, headers=APP1))
    assert body["partitions"] == 2
    assert [m["body"] for m in await read(client, name, headers=APP2)] == ["v2"]
    assert ok(await client.delete(f"/v1/app1/{name}", headers=APP1)) == {"status": "ok"}


# -- order of checks -----------------------------------------------------------

BIG = b"x" * 2000  # over max_message_bytes (1024)
HUGE = b"{" + b" " * 70_000 + b"}"  # over max_request_bytes (65536)
NOT_FOUND = "NotFound"
NO_QUEUE = "InvalidQueueName"
BAD_TTL = {"X-TTL": "0"}
TOO_LARGE = "PayloadTooLarge"
AS_JSON = {**APP1, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "status", "key"),
    [
        # unknown key (401) before unknown application (404)
        ("GET", "/v1/nobody", auth("wrong"), None, 401, "InvalidApplicationKey"),
        ("POST", "/v1/nobody/q", auth("key1", "wrong"), BIG, 401, "InvalidApplicationKey"),
        # unknown application (404) before unknown queue, rights, size and validation
        ("GET", "/v1/nobody", ANONYMOUS, None, 404, NOT_FOUND),
        ("POST", "/v1/nobody", APP2, HUGE, 404, NOT_FOUND),
        ("POST", "/v1/nobody/nosuchqueue", {**APP1, **BAD_TTL}, BIG, 404, NOT_FOUND),
        ("PUT", "/v1/nobody/nosuchqueue/zzz", ANONYMOUS, b"", 404, NOT_FOUND),
        # unknown queue (404) before rights, size and validation
        ("POST", "/v1/app1/nosuchqueue", {**APP2, **BAD_TTL}, BIG, 404, NO_QUEUE),
        ("PUT", "/v1/app1/nosuchqueue", ANONYMOUS, HUGE, 404, NO_QUEUE),
        ("PUT", "/v1/app1/nosuchqueue/zzz", ANONYMOUS, BIG, 404, NO_QUEUE),
        ("GET", "/v1/app1/" + "q" * 51, APP1, None, 404, NO_QUEUE),
        ("GET", "/v1/app1/bad*name?limit=0", APP1, None, 404, NO_QUEUE),
        # rights (403) before size and validation
        ("POST", "/v1/app1", APP2, HUGE, 403, "AccessDenied"),
        ("POST", "/v1/app1/{q}", {**APP2, **BAD_TTL}, BIG, 403, "AccessDenied"),
        ("PUT", "/v1/app1/{q}", ANONYMOUS, HUGE, 403, "AccessDenied"),
        ("PUT", "/v1/app1/{q}/zzz", APP2, BIG, 403, "AccessDenied"),
        ("GET", "/v1/app1/{q}?since=fred&limit=0", APP2, None, 403, "AccessDenied"),
        ("GET", "/v1/app1/{q}/zzz", APP2, None, 403, "AccessDenied"),
        ("DELETE", "/v1/app1/{q}/zzz", APP2, None, 403, "AccessDenied"),
        # size (413) before validation (400)
        ("POST", "/v1/app1", APP1, HUGE, 413, TOO_LARGE),
        ("POST", "/v1/app1/{q}", {**APP1, **BAD_TTL, "X-Partition": "x"}, BIG, 413, TOO_LARGE),
        ("PUT", "/v1/app1/{q}", APP1, HUGE, 413, TOO_LARGE),
        ("PUT", "/v1/app1/{q}/zzz", APP1, BIG, 413, TOO_LARGE),
        ("PUT", "/v1/app1/{q}/3:{id}", {**APP1, **BAD_TTL}, BIG, 413, TOO_LARGE),
        # validation (400)
        ("POST", "/v1/app1/{q}", {**APP1, **BAD_TTL}, b"x", 400, "ttl"),
        ("PUT", "/v1/app1/{q}/zzz", APP1, b"x", 400, "InvalidMessageID"),
        ("POST", "/v1/app1", AS_JSON, b"{", 400, "InvalidJSON"),
    ],
)
async def test_order_of_checks(
    client: httpx.AsyncClient,
    target: tuple[str, str],
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes | None,
    status: int,
    key: str,
) -> None:
    response = await send(client, method, path, headers, target, content)
    assert set(error(response, status)) == {key}
    await unchanged(client, target)
