"""Scoped tokens (SPEC §8): minting, scope, partitions, incarnation, expiry, tampering, rotation.

In-process over every backend, plus a real ``queuey serve`` process and the
Python client's ``token()`` against it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from queuey.client import Client
from queuey.config import Settings
from tests.api_support import JSON_TYPE, error, ok, post
from tests.conftest import (
    ALLOWED_ORIGIN,
    APP1,
    APP2,
    Server,
    auth,
    connect,
    make_queue,
    write_config,
)
from tests.oidc_support import Issuer, bearer, running_issuer
from tests.test_api_groups import act, create_group, url

DENIED = {"AccessDenied": "Access was denied to this resource."}
SECRET = "first secret"
PERSON = "bid:alice@example.com"
#: URL-safe, and never ";" or "," (SPEC §8: it travels in headers and query strings).
TOKEN = re.compile(r"[A-Za-z0-9_.~-]+")


@pytest.fixture
def secured(settings: Settings) -> Settings:
    return settings.replace(token_secret=(SECRET,))


@pytest.fixture
async def client(secured: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a token secret (this module's ``client``)."""
    async with connect(secured) as c:
        yield c


async def mint(
    client: httpx.AsyncClient,
    queue: str,
    headers: dict[str, str] = APP1,
    status: int = 201,
    **fields: Any,
) -> dict[str, Any]:
    """POST the tokens endpoint of app1's ``queue`` with JSON ``fields``; the answer's body."""
    response = await client.post(f"/v1/app1/{queue}/tokens", json=fields, headers=headers)
    if status != 201:
        return {"error_msg": error(response, status)}
    body = ok(response, 201)
    assert TOKEN.fullmatch(body["token"]), body
    return body


def messages(response: httpx.Response) -> list[str]:
    return [m["body"] for m in ok(response)["messages"]]


def invalid(response: httpx.Response) -> str:
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    messages = error(response, 401)
    assert set(messages) == {"InvalidToken"}, messages
    return messages["InvalidToken"]


# -- minting ---------------------------------------------------------------------


async def test_a_read_token_reads_and_nothing_more(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    first = await post(client, queue, "one", x_partition="1")
    second = await post(client, queue, "two", x_partition="2")
    minted = await mint(client, queue)
    assert (minted["expires_in"], minted["scope"]) == (3600, ["read"])
    token = minted["token"]
    me = bearer(token)
    path = f"/v1/app1/{queue}"

    assert messages(await client.get(path, params={"partitions": "1,2"}, headers=me)) == [
        "one",
        "two",
    ]
    assert messages(await client.get(f"{path}/2:{second['key']}", headers=me)) == ["two"]
    assert messages(await client.get(path, params={"access_token": token})) == ["one"]
    assert (await client.head(path, params={"access_token": token})).status_code == 200
    for method, target in [
        ("POST", path),
        ("PUT", path),
        ("DELETE", path),
        ("PUT", f"{path}/{first['key']}"),
        ("DELETE", f"{path}/{first['key']}"),
        ("GET", "/v1/app1"),
        ("POST", f"{path}/tokens"),  # a token never mints, not even a smaller one
    ]:
        response = await client.request(method, target, content=b"x", headers=me)
        assert error(response, 403) == DENIED, (method, target)
    # Consumer groups need consume.
    await create_group(client, queue)
    assert error(await act(client, queue, "claim", headers=me), 403) == DENIED
    assert error(await client.get(url(queue), headers=me), 403) == DENIED


async def test_a_consume_token_deletes_and_consumes_but_does_not_manage_groups(
    client: httpx.AsyncClient,
) -> None:
    queue = await make_queue(client)
    posted = await post(client, queue, "one")
    await create_group(client, queue)
    minted = await mint(client, queue, scope="consume", ttl=60)
    assert (minted["expires_in"], minted["scope"]) == (60, ["read", "consume"])
    me = bearer(minted["token"])
    ok(await client.get(url(queue, None), headers=me))  # list groups
    ok(await client.get(url(queue), headers=me))  # a group's state
    (claimed,) = ok(await act(client, queue, "claim", headers=me))["messages"]
    assert claimed["body"] == "one"
    ok(await act(client, queue, "extend", headers=me, receipts=[claimed["receipt"]]))
    ok(await act(client, queue, "ack", headers=me, receipts=[claimed["receipt"]]))
    ok(await act(client, queue, "seek", headers=me, to="earliest"))
    for method in ("PUT", "DELETE"):
        response = await client.request(method, url(queue, "g"), json={}, headers=me)
        assert error(response, 403) == DENIED
    # Publishing while acknowledging is the owner's (posting).
    (again,) = ok(await act(client, queue, "claim", headers=me))["messages"]
    response = await act(
        client, queue, "ack", headers=me, receipts=[again["receipt"]],
        publish=[{"queue": queue, "body": "x"}],
    )  # fmt: skip
    assert error(response, 403) == DENIED
    ok(await client.delete(f"/v1/app1/{queue}/{posted['key']}", headers=me))
    assert messages(await client.get(f"/v1/app1/{queue}", headers=APP1)) == []


@pytest.mark.parametrize(
    ("body", "form", "scope"),
    [
        ({"scope": "read"}, False, ["read"]),
        ({"scope": ["read", "consume"]}, False, ["read", "consume"]),
        ({"scope": ["consume"]}, False, ["read", "consume"]),
        ({"scope": "read,consume"}, True, ["read", "consume"]),
        ({"scope": "consume read"}, True, ["read", "consume"]),
        ({"scope": ""}, True, ["read"]),
        ({"scope": None, "ttl": None, "partitions": None}, False, ["read"]),
        ({"ttl": "86400", "partitions": "1,2"}, True, ["read"]),
        ({"partitions": [2, "1", 2]}, False, ["read"]),
        ({"partitions": []}, False, ["read"]),
    ],
)
async def test_minting_bodies(
    client: httpx.AsyncClient, body: dict[str, Any], form: bool, scope: list[str]
) -> None:
    queue = await make_queue(client, partitions=2)
    path = f"/v1/app1/{queue}/tokens"
    if form:
        response = await client.post(path, data=body, headers=APP1)
    else:
        response = await client.post(path, json=body, headers=APP1)
    assert ok(response, 201)["scope"] == scope


NOT_PARTITIONS = "must be a list of partitions or a comma-separated string"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"ttl": 0}, {"ttl": "0 is less than minimum value 1"}),
        ({"ttl": 86401}, {"ttl": "86401 is greater than maximum value 86400"}),
        ({"ttl": "fred"}, {"ttl": '"fred" is not a number'}),
        ({"scope": "write"}, {"scope": '"write" is not one of read, consume'}),
        ({"scope": ["read", 3]}, {"scope": "must be a string or a list of strings"}),
        ({"partitions": [3]}, {"partitions": "3 is greater than maximum value 2"}),
        ({"partitions": "0"}, {"partitions": "0 is less than minimum value 1"}),
        ({"partitions": "x"}, {"partitions": '"x" is not a number'}),
        ({"partitions": {"a": 1}}, {"partitions": NOT_PARTITIONS}),
        (
            {"ttl": -1, "scope": "all", "partitions": [9]},
            {
                "ttl": "-1 is less than minimum value 1",
                "scope": '"all" is not one of read, consume',
                "partitions": "9 is greater than maximum value 2",
            },
        ),
    ],
)  # fmt: skip
async def test_invalid_minting_bodies_are_400(
    client: httpx.AsyncClient, body: dict[str, Any], errors: dict[str, str]
) -> None:
    queue = await make_queue(client, partitions=2)
    assert (await mint(client, queue, status=400, **body))["error_msg"] == errors
    response = await client.post(
        f"/v1/app1/{queue}/tokens", content=b"{", headers={**APP1, **JSON_TYPE}
    )
    assert set(error(response, 400)) == {"InvalidJSON"}


async def test_who_may_mint(client: httpx.AsyncClient) -> None:
    """Only what the minter holds, and only with credentials other than a token."""
    plain = await make_queue(client)
    listed = await make_queue(client, principles="app:app2")  # app1 owns it but is not listed
    public = await make_queue(client, type="public")
    await mint(client, plain, scope="consume")
    for headers in (APP2, {}, auth("key3a")):
        assert (await mint(client, plain, headers, 403))["error_msg"] == DENIED
    assert (await mint(client, listed, APP1, 403))["error_msg"] == DENIED
    await mint(client, listed, APP2, scope="consume")
    # Anyone may read a public queue, so any application may mint a read token; not consume.
    await mint(client, public, APP2)
    assert (await mint(client, public, APP2, 403, scope="consume"))["error_msg"] == DENIED
    assert (await mint(client, public, {}, 403))["error_msg"] == DENIED
    # A token with an application key: the key's rights mint, the token's never.
    token = (await mint(client, listed, APP2, scope="consume"))["token"]
    both = {"Authorization": f"Bearer {token}; Application key1"}
    assert (await mint(client, listed, both, 403))["error_msg"] == DENIED


async def test_order_of_checks(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    junk = {"Authorization": "Bearer abc"}
    invalid(await client.post("/v1/nobody/q/tokens", json={}, headers=junk))
    assert set(error(await client.post("/v1/nobody/q/tokens", json={}, headers=APP1), 404)) == {
        "NotFound"
    }
    response = await client.post("/v1/app1/nosuch/tokens", json={}, headers=APP1)
    assert set(error(response, 404)) == {"InvalidQueueName"}
    # 403 before 400: no rights, an invalid body.
    assert (await mint(client, queue, APP2, 403, ttl=0))["error_msg"] == DENIED
    assert (await client.get(f"/v1/app1/{queue}/tokens", headers=APP1)).status_code == 405


async def test_without_a_secret_minting_is_403_and_tokens_are_401(
    settings: Settings, secured: Settings
) -> None:
    async with connect(secured) as client:
        queue = await make_queue(client)
        token = (await mint(client, queue))["token"]
    async with connect(settings.replace(token_secret=())) as client:  # the same store, no secret
        denied = (await mint(client, queue, status=403))["error_msg"]
        assert "token_secret" in denied["AccessDenied"]
        # The rights come first: without them, the usual 403; invalid bodies are still 400.
        assert (await mint(client, queue, APP2, 403))["error_msg"] == DENIED
        assert "ttl" in (await mint(client, queue, status=400, ttl=0))["error_msg"]
        assert "token_secret" in invalid(
            await client.get(f"/v1/app1/{queue}", headers=bearer(token))
        )


# -- where a token works -------------------------------------------------------------


async def test_partitions_of_a_token(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=3)
    keys = {p: (await post(client, queue, f"m{p}", x_partition=str(p)))["key"] for p in (1, 2, 3)}
    minted = await mint(client, queue, scope="consume", partitions=[2, 3])
    me = bearer(minted["token"])
    path = f"/v1/app1/{queue}"
    assert messages(await client.get(path, params={"partitions": "2,3"}, headers=me)) == [
        "m2",
        "m3",
    ]
    for partitions in (None, "1", "1,2", "2,4"):  # none given: partition 1
        params = {"partitions": partitions} if partitions else {}
        assert error(await client.get(path, params=params, headers=me), 403) == DENIED
    assert messages(await client.get(f"{path}/3:{keys[3]}", headers=me)) == ["m3"]
    for ids in (keys[1], f"1:{keys[1]}", f"2:{keys[2]},1:{keys[1]}"):
        assert error(await client.get(f"{path}/{ids}", headers=me), 403) == DENIED
        assert error(await client.delete(f"{path}/{ids}", headers=me), 403) == DENIED
    # Rights before validation: a partition outside is 403 even where an id is malformed.
    assert error(await client.get(f"{path}/1:nothex", headers=me), 403) == DENIED
    assert set(error(await client.get(f"{path}/2:nothex", headers=me), 400)) == {"InvalidMessageID"}

    await create_group(client, queue)
    # A claim without partitions takes the token's.
    claimed = ok(await act(client, queue, "claim", headers=me))["messages"]
    assert sorted(m["body"] for m in claimed) == ["m2", "m3"]
    assert error(await act(client, queue, "claim", headers=me, partitions=[1]), 403) == DENIED
    assert error(await act(client, queue, "claim", headers=me, partitions="1,2"), 403) == DENIED
    assert error(await act(client, queue, "seek", headers=me, to="earliest", partitions=[1]),
                 403) == DENIED  # fmt: skip
    # A receipt of partition 1 (claimed by the owner) is not the token's to settle.
    (owned,) = ok(await act(client, queue, "claim", partitions=[1]))["messages"]
    response = await act(client, queue, "ack", headers=me, receipts=[owned["receipt"]])
    assert error(response, 403) == DENIED
    acked = ok(await act(client, queue, "ack", headers=me, receipts=[claimed[0]["receipt"]]))
    assert acked["acknowledged"] == [claimed[0]["receipt"]]
    ok(await client.delete(f"{path}/2:{keys[2]}", headers=me))


async def test_rights_are_the_union_of_the_tokens(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    for p in (1, 2):
        await post(client, queue, f"m{p}", x_partition=str(p))
    one = (await mint(client, queue, partitions=[1]))["token"]
    two = (await mint(client, queue, partitions="2"))["token"]
    path = f"/v1/app1/{queue}"
    both = {"Authorization": f"Bearer {one}; Bearer {two}"}
    assert messages(await client.get(path, params={"partitions": "1,2"}, headers=both)) == [
        "m1",
        "m2",
    ]
    # The header's and access_token='s together.
    params = {"partitions": "1,2", "access_token": two}
    assert messages(await client.get(path, params=params, headers=bearer(one))) == ["m1", "m2"]
    assert error(await client.get(path, params={"partitions": "1,2"}, headers=bearer(one)),
                 403) == DENIED  # fmt: skip


async def test_a_token_opens_its_queue_only(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    other = await make_queue(client)
    await post(client, queue, "mine")
    token = (await mint(client, queue, scope="consume"))["token"]
    assert error(await client.get(f"/v1/app1/{other}", headers=bearer(token)), 403) == DENIED
    # The same queue name under another application is another queue.
    ok(await client.post("/v1/app2", json={"queue_name": queue}, headers=APP2), 201)
    assert error(await client.get(f"/v1/app2/{queue}", headers=bearer(token)), 403) == DENIED
    assert messages(await client.get(f"/v1/app1/{queue}", headers=bearer(token))) == ["mine"]
    # Deleted and created again: another incarnation, which the token does not open.
    ok(await client.delete(f"/v1/app1/{queue}", headers=APP1))
    await make_queue(client, queue_name=queue)
    await post(client, queue, "new")
    assert error(await client.get(f"/v1/app1/{queue}", headers=bearer(token)), 403) == DENIED


async def test_partitions_added_later(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=1)
    every = (await mint(client, queue))["token"]
    first = (await mint(client, queue, partitions=[1]))["token"]
    ok(await client.put(f"/v1/app1/{queue}", json={"partitions": 2}, headers=APP1))
    await post(client, queue, "late", x_partition="2")
    path = f"/v1/app1/{queue}"
    assert messages(await client.get(path, params={"partitions": "2"}, headers=bearer(every))) == [
        "late"
    ]
    response = await client.get(path, params={"partitions": "2"}, headers=bearer(first))
    assert error(response, 403) == DENIED


async def test_expired_tokens_are_401_without_leeway(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client)
    before = time.time()
    minted = await mint(client, queue, ttl=1)
    after = time.time()
    assert minted["expires_in"] == 1
    token = minted["token"]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    # It ends ttl seconds after it was minted (to the millisecond), not at a whole second
    # up to one later: a client that waits expires_in and a little must find it expired.
    assert before + 1 - 0.001 <= payload["exp"] <= after + 1 + 0.001
    ok(await client.get(f"/v1/app1/{queue}", headers=bearer(token)))
    await asyncio.sleep(max(0.0, payload["exp"] - time.time()) + 0.05)
    assert "expired" in invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(token)))
    assert "expired" in invalid(
        await client.get(f"/v1/app1/{queue}", params={"access_token": token})
    )


def tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


async def test_tampered_tokens_are_401(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    token = (await mint(client, queue, partitions=[1]))["token"]
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (
        tamper(token, scope="consume"),
        tamper(token, partitions=[1, 2]),
        tamper(token, exp=int(time.time()) + 10**6),
        tamper(token, queue="other"),
        f"{header}.{payload}.{flipped}",
        f"{header}.{payload}.",
        f"{header}.{payload}",
    ):
        invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(bad)))


async def test_token_secret_rotation(settings: Settings, secured: Settings) -> None:
    async with connect(secured) as client:
        queue = await make_queue(client)
        await post(client, queue, "kept")
        old = (await mint(client, queue))["token"]
    rotated = settings.replace(token_secret=("second secret", SECRET))
    async with connect(rotated) as client:
        assert messages(await client.get(f"/v1/app1/{queue}", headers=bearer(old))) == ["kept"]
        new = (await mint(client, queue))["token"]
        assert messages(await client.get(f"/v1/app1/{queue}", headers=bearer(new))) == ["kept"]
    async with connect(settings.replace(token_secret=("second secret",))) as client:
        assert "signature" in invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(old)))
        assert messages(await client.get(f"/v1/app1/{queue}", headers=bearer(new))) == ["kept"]


# -- people mint -----------------------------------------------------------------------


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    yield from running_issuer()


async def test_a_person_mints_tokens_that_end_with_the_persons_jwt(
    secured: Settings, issuer: Issuer
) -> None:
    async with connect(secured.replace(issuers=(issuer.settings(),))) as client:
        queue = await make_queue(client, principles=PERSON)
        await post(client, queue, "for alice")
        soon = int(time.time()) + 100
        me = bearer(issuer.token("ec1", exp=soon))
        minted = await mint(client, queue, me, scope="consume", ttl=3600)
        assert 95 <= minted["expires_in"] <= 100
        claims = json.loads(base64.urlsafe_b64decode(minted["token"].split(".")[1] + "=="))
        assert claims["exp"] <= soon
        token = minted["token"]
        assert messages(await client.get(f"/v1/app1/{queue}", params={"access_token": token})) == [
            "for alice"
        ]
        longer = await mint(client, queue, bearer(issuer.token("rsa1")), ttl=60)
        assert longer["expires_in"] == 60
        # A person not listed mints nothing; a JWT within its leeway after exp mints nothing either.
        stranger = bearer(issuer.token("rsa1", email="bob@example.com"))
        assert (await mint(client, queue, stranger, 403))["error_msg"] == DENIED
        late = bearer(issuer.token("rsa1", exp=int(time.time()) - 10))
        assert "expires" in invalid(
            await client.post(f"/v1/app1/{queue}/tokens", json={}, headers=late)
        )


# -- a real server, and the Python client ------------------------------------------------


def secure_config(path: Path, storage_url: str, issuer: Issuer) -> Path:
    write_config(path, storage_url, 5000)  # serve --port gives the port
    keys = path.parent / "keys.json"
    keys.write_text(json.dumps(issuer.jwks()))
    with path.open("a", encoding="utf-8") as handle:
        handle.write(
            f'\n[auth]\ntoken_secret = ["{SECRET}"]\n\n'
            f'[[auth.issuers]]\nissuer = "{issuer.name}"\naudience = "queuey-test"\n'
            f'jwks_url = "{issuer.jwks_url}"\n\n'
            '[[auth.issuers]]\nissuer = "https://file.example"\naudience = "queuey-test"\n'
            'jwks_file = "keys.json"\nalgorithms = ["ES256"]\n'
        )
    return path


def test_tokens_and_people_on_a_real_server(
    serve: type[Server], tmp_path: Path, issuer: Issuer
) -> None:
    server = serve(
        secure_config(tmp_path / "queuey.toml", f"sqlite:///{tmp_path / 'q.db'}", issuer)
    )
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        fields = {"queue_name": "live", "partitions": "2", "principles": f"app:app1,{PERSON}"}
        created = http.post("/v1/app1", data=fields, headers=APP1)
        assert created.status_code == 201, created.text
        assert (
            http.post(
                "/v1/app1/live", content=b"hello", headers={**APP1, "X-Partition": "2"}
            ).status_code
            == 201
        )
        minted = http.post(
            "/v1/app1/live/tokens", data={"scope": "read", "partitions": "2"}, headers=APP1
        )
        assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
        read = http.get("/v1/app1/live", params={"partitions": "2", "access_token": token})
        assert [m["body"] for m in read.json()["messages"]] == ["hello"]
        assert http.get("/v1/app1/live", params={"access_token": token}).status_code == 403
        expired = http.get("/v1/app1/live", headers=bearer(tamper(token, exp=1)))
        assert expired.status_code == 401
        assert expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        # People of both issuers: over the JWKS URL and from the JWKS file.
        person = http.get("/v1/app1/live", params={"partitions": "2"},
                          headers=bearer(issuer.token("rsa1")))  # fmt: skip
        assert [m["body"] for m in person.json()["messages"]] == ["hello"]
        filed = Issuer("https://file.example")
        try:
            filed.keys = issuer.keys
            filed.published = list(issuer.published)
            from_file = http.get("/v1/app1/live", params={"partitions": "2"},
                                 headers=bearer(filed.token("ec1")))  # fmt: skip
            assert from_file.status_code == 200, from_file.text
            wrong_alg = http.get("/v1/app1/live", headers=bearer(filed.token("rsa1")))
            assert wrong_alg.status_code == 401
        finally:
            filed.stop()
    # Neither the access log nor anything else the server wrote holds a token.
    server.stop()
    logged = server.log.read_text()
    assert "/v1/{app}/{queue}/tokens" in logged
    assert token not in logged and "access_token" not in logged


def test_the_python_clients_token_against_a_real_server(
    serve: type[Server], tmp_path: Path, issuer: Issuer
) -> None:
    server = serve(
        secure_config(tmp_path / "queuey.toml", f"sqlite:///{tmp_path / 'q.db'}", issuer)
    )
    server.start()
    with Client(server.url, app="app1", key="key1") as owner:
        owner.queue("orders").create(partitions=2)
        owner.queue("orders").post("first", partition=1)
        owner.queue("orders").post("second", partition=2)
        token = owner.queue("orders").token(ttl=600, scope="read", partitions=[1])
        assert (token.expires_in, token.scope) == (600, ("read",))
        consume = owner.queue("orders").token(scope=["consume"])
        assert (consume.expires_in, consume.scope) == (3600, ("read", "consume"))
    with Client(server.url, app="app1", token=token.token) as reader:
        assert [m.body for m in reader.queue("orders").read()] == ["first"]
    with Client(server.url, app="app1", token=consume.token) as consumer:
        found = consumer.queue("orders").read(partitions=[1, 2])
        assert sorted(m.body for m in found) == ["first", "second"]


async def test_a_page_of_another_origin_reads_why_its_token_was_refused(
    client: httpx.AsyncClient,
) -> None:
    """CORS exposes WWW-Authenticate: a script sees that its token expired, and mints anew."""
    queue = await make_queue(client)
    headers = {"Origin": ALLOWED_ORIGIN, "Authorization": "Bearer expired.or.forged"}
    response = await client.get(f"/v1/app1/{queue}", headers=headers)
    invalid(response)
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert "www-authenticate" in exposed


async def test_a_token_ends_when_its_minter_loses_the_rights(client: httpx.AsyncClient) -> None:
    """A token never grants more than its minter has (SPEC §8): changing ``principles``
    revokes what the removed principal minted; what the remaining ones minted stays."""
    queue = await make_queue(client, principles="app:app1,app:app2")
    await post(client, queue, "one")
    by_app2 = (await mint(client, queue, headers=APP2))["token"]
    by_app1 = (await mint(client, queue, headers=APP1, scope="consume"))["token"]
    path = f"/v1/app1/{queue}"
    assert messages(await client.get(path, headers=bearer(by_app2))) == ["one"]
    ok(await client.put(path, json={"principles": "app:app1"}, headers=APP1))
    assert error(await client.get(path, headers=bearer(by_app2)), 403) == DENIED
    assert messages(await client.get(path, headers=bearer(by_app1))) == ["one"]
    # Listed again: the token works again (it was never changed, only the rules).
    ok(await client.put(path, json={"principles": "app:app1,app:app2"}, headers=APP1))
    assert messages(await client.get(path, headers=bearer(by_app2))) == ["one"]


async def test_a_read_token_of_a_public_queue_lasts_while_it_is_public(
    client: httpx.AsyncClient,
) -> None:
    queue = await make_queue(client, type="public", principles="app:app1")
    await post(client, queue, "one")
    token = (await mint(client, queue, headers=APP2))["token"]  # app2 may read: public
    path = f"/v1/app1/{queue}"
    ok(await client.put(path, json={"type": "user"}, headers=APP1))
    assert error(await client.get(path, headers=bearer(token)), 403) == DENIED


async def test_partitions_may_be_one_json_number(client: httpx.AsyncClient) -> None:
    """SPEC §1: in JSON, numbers may be integers or numeric strings."""
    queue = await make_queue(client, partitions=3)
    token = (await mint(client, queue, partitions=2))["token"]
    path = f"/v1/app1/{queue}"
    ok(await client.get(path, params={"partitions": "2"}, headers=bearer(token)))
    assert error(await client.get(path, headers=bearer(token)), 403) == DENIED
    refused = await mint(client, queue, status=400, partitions=4)
    assert refused["error_msg"] == {"partitions": "4 is greater than maximum value 3"}
    refused = await mint(client, queue, status=400, ttl=True)
    assert refused["error_msg"] == {"ttl": '"true" is not a number'}
