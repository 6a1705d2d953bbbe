"""HTTP around the API: CORS, HEAD, 404 and 405, trailing slashes, operations endpoints."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from queuey import __version__
from queuey.api.app import create_app, storage_for
from queuey.config import Settings
from queuey.storage.base import StoreUnavailable
from tests.api_support import error, ok
from tests.conftest import ALLOWED_ORIGIN, APP1, make_queue

ID = "6b63a18fea0011f18b4e71c5f9abafa9"
ENDPOINTS = [
    "/v1/app1",
    "/v1/app1/q",
    f"/v1/app1/q/{ID}",
    "/v1/nobody/nosuchqueue",
    "/__heartbeat__",
    "/__lbheartbeat__",
    "/__version__",
    "/openapi.json",
]
#: Paths answering GET, as {path: status} once the queue ``q`` holds the message ``ID``.
GETS = {
    "/v1/app1": 200,
    "/v1/app1?details=true&include_count=true": 200,
    "/v1/app1/q": 200,
    "/v1/app1/q?since=fred": 400,
    f"/v1/app1/q/{ID}": 200,
    "/v1/app1/q/zzz": 400,
    "/v1/app1/nosuchqueue": 404,
    "/v1/nobody": 404,
    "/__heartbeat__": 200,
    "/__lbheartbeat__": 200,
    "/__version__": 200,
    "/openapi.json": 200,
    "/nothing/here": 404,
}


def names(header: str) -> set[str]:
    return {item.strip().lower() for item in header.split(",")}


@pytest.fixture
async def q(client: httpx.AsyncClient) -> str:
    """app1's queue ``q`` holding the message ``ID``."""
    name = await make_queue(client, queue_name="q")
    ok(await client.put(f"/v1/app1/{name}/{ID}", content=b"body", headers=APP1))
    return name


# -- CORS ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_preflight_from_allowed_origin(client: httpx.AsyncClient, path: str) -> None:
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
        response = await client.options(
            path,
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type, x-ttl",
                "Authorization": "Application wrong",  # preflights ignore it
            },
        )
        assert ok(response) == {"status": "ok"}
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        allowed = names(response.headers["access-control-allow-methods"])
        assert allowed >= {"get", "head", "post", "put", "delete"}
        assert names(response.headers["access-control-allow-headers"]) >= {
            "authorization",
            "content-type",
            "x-ttl",
            "x-partition",
        }


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/v1/app1", APP1, 200),
        ("POST", "/v1/app1/q", APP1, 201),
        ("GET", "/v1/app1/q", {}, 403),
        ("GET", "/v1/app1/q", {"Authorization": "Application wrong"}, 401),
        ("GET", "/v1/nobody", APP1, 404),
        ("PATCH", "/v1/app1", APP1, 405),
        ("HEAD", "/v1/app1/q", APP1, 200),
        ("GET", "/__heartbeat__", {}, 200),
        ("GET", "/__version__", {}, 200),
    ],
)
async def test_responses_to_allowed_origin_carry_cors(
    client: httpx.AsyncClient, q: str, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = await client.request(
        method, path, content=b"m" if method == "POST" else None,
        headers={**headers, "Origin": ALLOWED_ORIGIN},
    )  # fmt: skip
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


@pytest.mark.parametrize("origin", ["http://evil.example", "https://allowed.example", "null"])
async def test_disallowed_origin_gets_no_cors_headers(
    client: httpx.AsyncClient, origin: str
) -> None:
    for method, headers, status in [
        ("OPTIONS", {"Access-Control-Request-Method": "POST"}, 405),
        ("GET", APP1, 200),
        ("GET", {}, 403),
    ]:
        response = await client.request(method, "/v1/app1", headers={**headers, "Origin": origin})
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_without_configured_origins_there_is_no_cors(settings: Settings) -> None:
    app = create_app(settings.replace(cors_origins=()))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as c:
            for method in ("OPTIONS", "GET"):
                response = await c.request(
                    method,
                    "/__version__",
                    headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"},
                )
                assert "access-control-allow-origin" not in response.headers


async def test_any_origin(settings: Settings) -> None:
    app = create_app(settings.replace(cors_origins=("*",)))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as c:
            origin = {"Origin": "https://anyone.example"}
            response = await c.options(
                "/v1/app1", headers={**origin, "Access-Control-Request-Method": "PUT"}
            )
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] in ("*", origin["Origin"])
            response = await c.get("/v1/app1", headers={**origin, **APP1})
            assert response.headers["access-control-allow-origin"] in ("*", origin["Origin"])


# -- HEAD ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), GETS.items())
async def test_head_wherever_get(client: httpx.AsyncClient, q: str, path: str, status: int) -> None:
    got = await client.get(path, headers=APP1)
    head = await client.head(path, headers=APP1)
    assert got.status_code == head.status_code == status
    assert got.content and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"] == "application/json"
    if "content-length" in head.headers:
        assert head.headers["content-length"] == got.headers["content-length"]


async def test_head_changes_nothing(client: httpx.AsyncClient, q: str) -> None:
    """HEAD on a collection is a read, never a write or a delete."""
    assert (await client.head(f"/v1/app1/q/{ID}", headers=APP1)).status_code == 200
    assert (await client.head("/v1/app1/q", headers=APP1)).status_code == 200
    (message,) = ok(await client.get(f"/v1/app1/q/{ID}", headers=APP1))["messages"]
    assert message["body"] == "body"


# -- 404, 405, trailing slashes -----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1",
        "/v1/",
        "/v2/app1",
        "/nothing/here",
        f"/v1/app1/q/{ID}/more",
        f"/v1/app1/q/{ID}//more/",
        "/v1/app1/q%2Fx",  # an encoded slash does not split a segment
    ],
)
async def test_unknown_path_is_json_404(client: httpx.AsyncClient, q: str, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        response = await client.request(method, path, headers=APP1)
        assert "location" not in response.headers  # never a redirect
        assert set(error(response, 404)) in ({"NotFound"}, {"InvalidQueueName"})


@pytest.mark.parametrize(
    ("path", "same_as"),
    [
        ("/v1/app1/", "/v1/app1"),
        ("/v1//app1", "/v1/app1"),
        ("/v1///app1//", "/v1/app1"),
        ("/v1/app1/q/", "/v1/app1/q"),
        ("/v1/app1//q", "/v1/app1/q"),
        (f"/v1/app1/q/{ID}/", f"/v1/app1/q/{ID}"),
        (f"/v1/app1/q//1%3A{ID}//", f"/v1/app1/q/1:{ID}"),
        ("/__heartbeat__/", "/__heartbeat__"),
        ("/__lbheartbeat__//", "/__lbheartbeat__"),
        ("/__version__/", "/__version__"),
    ],
)
async def test_trailing_slashes_and_empty_segments_are_ignored(
    client: httpx.AsyncClient, q: str, path: str, same_as: str
) -> None:
    """As the original's router: answered directly, never redirected."""
    expected = await client.get(same_as, headers=APP1)
    response = await client.get(path, headers=APP1)
    assert "location" not in response.headers
    assert (response.status_code, response.json()) == (expected.status_code, expected.json())
    assert response.status_code == 200


async def test_writes_through_a_trailing_slash(client: httpx.AsyncClient) -> None:
    """The original client posted to URLs built on a base ending in "/"."""
    created = await client.post("/v1/app1/", data={"queue_name": "slashed"}, headers=APP1)
    assert ok(created, 201)["queue_name"] == "slashed"
    posted = await client.post("/v1/app1/slashed/", content=b"hello", headers=APP1)
    key = ok(posted, 201)["messages"][0]["key"]
    found = ok(await client.get(f"/v1/app1//slashed/{key}/", headers=APP1))["messages"]
    assert [m["body"] for m in found] == ["hello"]
    ok(await client.delete(f"/v1/app1/slashed/1%3A{key}/", headers=APP1))
    assert ok(await client.get("/v1/app1/slashed/", headers=APP1))["messages"] == []
    ok(await client.delete("/v1/app1/slashed/", headers=APP1))
    assert (await client.get("/v1/app1/slashed", headers=APP1)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/app1", {"GET", "HEAD", "POST"}),
        ("PUT", "/v1/app1", {"GET", "HEAD", "POST"}),
        ("PATCH", "/v1/app1/q", {"GET", "HEAD", "POST", "PUT", "DELETE"}),
        ("POST", f"/v1/app1/q/{ID}", {"GET", "HEAD", "PUT", "DELETE"}),
        ("OPTIONS", "/v1/app1/q", {"GET", "HEAD", "POST", "PUT", "DELETE"}),
        ("POST", "/__heartbeat__", {"GET", "HEAD"}),
        ("DELETE", "/__version__", {"GET", "HEAD"}),
        ("PUT", "/openapi.json", {"GET", "HEAD"}),
    ],
)
async def test_wrong_method_is_json_405(
    client: httpx.AsyncClient, q: str, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers=APP1)
    assert set(error(response, 405)) == {"MethodNotAllowed"}
    assert names(response.headers["allow"]) == {m.lower() for m in allowed}
    assert (await client.get("/v1/app1/q", headers=APP1)).status_code == 200  # still there


# -- operations ---------------------------------------------------------------


async def test_operations_endpoints(client: httpx.AsyncClient) -> None:
    assert ok(await client.get("/__heartbeat__")) == {"status": "ok"}
    assert ok(await client.get("/__lbheartbeat__")) == {"status": "ok"}
    assert ok(await client.get("/__version__")) == {
        "status": "ok",
        "name": "queuey",
        "version": __version__,
    }
    head = await client.head("/__heartbeat__")
    assert (head.status_code, head.content) == (200, b"")


@pytest.fixture
async def broken_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a store that does not answer once started."""
    store = storage_for(settings)

    async def ping() -> None:
        raise StoreUnavailable("unplugged for the test")

    app = create_app(settings, store)
    async with app.lifespan():
        store.ping = ping  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as c:
            yield c


async def test_heartbeat_when_storage_is_down(broken_client: httpx.AsyncClient) -> None:
    assert set(error(await broken_client.get("/__heartbeat__"), 503)) == {"StorageUnavailable"}
    head = await broken_client.head("/__heartbeat__")
    assert (head.status_code, head.content) == (503, b"")
    # The load balancer's heartbeat does not ask the store.
    assert ok(await broken_client.get("/__lbheartbeat__")) == {"status": "ok"}


async def test_a_server_worker_freezes_what_it_holds_from_start_up(tmp_path: Path) -> None:
    """The ASGI lifespan (how granian starts a worker) ends its start-up with gc.freeze():
    full collections then no longer walk the modules and classes loaded by then."""
    db = tmp_path / "q.db"
    app = create_app(Settings(storage_url=f"sqlite:///{db}", application_keys={"a": ("k",)}))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    running = asyncio.create_task(app(scope, inbox.get, send))  # type: ignore[arg-type]
    try:
        await inbox.put({"type": "lifespan.startup"})
        for _ in range(500):
            if sent:
                break
            await asyncio.sleep(0.01)
        assert sent == [{"type": "lifespan.startup.complete"}]
        assert gc.get_freeze_count() > 10_000
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(running, 10)
        gc.unfreeze()
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
