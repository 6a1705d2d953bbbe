"""The framework adapters of bench/frameworks answer exactly as Queuey does.

Each request goes to the real app and to the Starlette and Falcon adapters,
all in-process (httpx over ASGI) over one started SQLite store; status,
Content-Type, a request id and JSON body must be the same. Fresh message
keys and timestamps are checked for their shape and then set aside.

Also make bench's bare baselines (bench/baseline_app.py), served by granian as
``queuey serve`` serves Queuey: each answers the same constant to any request.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from bench import baseline_app
from bench.frameworks.adapt import APP
from bench.frameworks.apps import build
from bench.frameworks.bare import ANSWER
from bench.servers import Fleet
from queuey.api.app import storage_for
from queuey.config import Settings
from queuey.core.service import QueueService

KEY = "bench-key"
OWNER = {"Authorization": f"Application {KEY}"}
STRANGER = {"Authorization": "Application other-key"}  # a known key of another application
TEXT = {**OWNER, "Content-Type": "text/plain"}
ADAPTERS = ("starlette", "falcon")

CASES = [
    # method, path, headers, body, Queuey's status
    ("POST", "/v1/bench/posted", {**TEXT, "X-TTL": "60", "X-Partition": "2"}, b"hello", 201),
    (
        "POST",
        "/v1/bench/posted",
        {**OWNER, "Content-Type": "application/json"},
        b'{"messages":[{"body":"a","partition":1},{"body":"b","partition":2}]}',
        201,
    ),
    ("GET", "/v1/bench/read?limit=2", OWNER, b"", 200),
    ("GET", "/v1/bench/read?partitions=2,1&order=descending&limit=3&limit=1", OWNER, b"", 200),
    ("POST", "/v1/bench/posted", {**TEXT, "X-TTL": "soon", "X-Partition": "9"}, b"x", 400),
    ("POST", "/v1/bench/posted", {**OWNER, "Content-Type": "application/json"}, b"{", 400),
    ("GET", "/v1/bench/read?limit=0&order=up", OWNER, b"", 400),
    ("POST", "/v1/bench/posted", {**TEXT, "Authorization": "Application nope"}, b"x", 401),
    ("GET", "/v1/bench/read", {"Authorization": "Application nope"}, b"", 401),
    ("GET", "/v1/bench/read", {}, b"", 403),
    ("POST", "/v1/bench/posted", {**STRANGER, "Content-Type": "text/plain"}, b"x", 403),
    ("GET", "/v1/bench/absent", OWNER, b"", 404),
    ("GET", "/v1/nobody/read", OWNER, b"", 404),
    ("POST", "/v1/bench/posted", TEXT, b"x" * 2000, 413),
]


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Queuey and each adapter over one started store with queues ``posted`` and ``read``."""
    settings = Settings(
        storage_url=f"sqlite:///{tmp_path / 'bench.db'}",
        application_keys={APP: (KEY,), "other": ("other-key",)},
        max_request_bytes=1024,
    )
    store = storage_for(settings)
    await store.start()
    try:
        service = QueueService(store)
        await service.queues.create(APP, {"queue_name": "posted", "partitions": 2})
        await service.queues.create(APP, {"queue_name": "read", "partitions": 2})
        read = await service.queues.find(APP, "read")
        for i in range(4):
            await service.messages.post_one(read, f"m{i}".encode(), None, None, str(i % 2 + 1))
        async with contextlib.AsyncExitStack() as stack:
            found = {}
            for name in ("queuey", *ADAPTERS):
                transport = httpx.ASGITransport(app=cast(Any, build(name, settings, store)))
                client = httpx.AsyncClient(transport=transport, base_url="http://bench.test")
                found[name] = await stack.enter_async_context(client)
            yield found
    finally:
        await store.close()


def comparable(document: Any) -> Any:
    """The answer with fresh keys and timestamps checked and set aside."""
    for message in document.get("messages", []) if isinstance(document, dict) else []:
        if "key" in message:
            assert re.fullmatch(r"[0-9a-f]{12}1[0-9a-f]{19}", message.pop("key"))
            assert re.fullmatch(r"[0-9]+\.[0-9]{7}", message.pop("timestamp"))
    return document


@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), CASES)
async def test_adapters_answer_as_queuey(
    clients: dict[str, httpx.AsyncClient],
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    answers = {}
    for name, client in clients.items():
        response = await client.request(method, path, headers=headers, content=body)
        answers[name] = (
            response.status_code,
            response.headers["content-type"],
            "x-request-id" in response.headers,  # behind Queuey's observer
            comparable(response.json()),
        )
    assert answers["queuey"][0] == status, answers["queuey"]
    for name in ADAPTERS:
        assert answers[name] == answers["queuey"], name


async def test_adapters_pass_the_idempotency_key(clients: dict[str, httpx.AsyncClient]) -> None:
    """A post repeated with its key, through any adapter, gets the first post's answer."""
    headers = {**TEXT, "X-Idempotency-Key": "once"}
    answers = [
        (await client.post("/v1/bench/posted", headers=headers, content=b"hello")).json()
        for client in clients.values()
    ]
    assert answers[0]["status"] == "ok"
    assert answers[1:] == [answers[0]] * len(ADAPTERS)


async def test_bare_handler_answers_a_constant() -> None:
    transport = httpx.ASGITransport(app=cast(Any, build("bare", Settings())))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        response = await client.post("/anything", content=b"x" * 140)
    assert (response.status_code, response.content) == (200, ANSWER)


@pytest.mark.parametrize("app", sorted(baseline_app.APPS))
def test_bench_baselines_answer_a_constant_on_granian(app: str, tmp_path: Path) -> None:
    """Starlette, the plain ASGI callable and the RSGI one: the same answer to GET and POST."""
    assert baseline_app.ANSWER == ANSWER  # the ASGI baseline is bench/frameworks/bare.py
    with Fleet(tmp_path, None) as fleet:
        server = fleet.baseline(app)
        assert server.name == ("baseline" if app == "starlette" else f"baseline-{app}")
        assert ["--app", app] == server.command[3:5]
        posted = httpx.post(f"{server.url}/v1/bench/weak", content=b"x" * 140, timeout=10)
        got = httpx.get(f"{server.url}/v1/bench/read?limit=10", timeout=10)
        pids = server.pids()
    for response in (posted, got):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == ANSWER
    assert len(pids) >= 2  # granian's main process and its worker, stopped with the fleet
