"""Two Queuey apps on one SQLite file: a queue one of them has cached changes in the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from queuey.api.app import create_app
from queuey.config import Settings
from tests.conftest import APP1, KEYS


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    settings = Settings(storage_url=f"sqlite:///{tmp_path / 'shared.db'}", application_keys=KEYS)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(settings)
            await stack.enter_async_context(app.lifespan())
            transport = httpx.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://queuey.test")
                )
            )
        yield clients[0], clients[1]


async def test_writes_follow_settings_changed_elsewhere(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = pair
    assert (
        await a.post("/v1/app1", json={"queue_name": "q", "consistency": "weak"}, headers=APP1)
    ).status_code == 201
    assert (await a.post("/v1/app1/q", content=b"1", headers=APP1)).status_code == 201  # a caches q
    grown = await b.put("/v1/app1/q", json={"partitions": 3, "consistency": "strong"}, headers=APP1)
    assert grown.status_code == 200
    posted = await a.post("/v1/app1/q", content=b"2", headers={**APP1, "X-Partition": "3"})
    assert posted.status_code == 201, posted.text
    assert posted.json()["messages"][0]["partition"] == 3
    strong = await a.post("/v1/app1/q", content=b"3", headers={**APP1, "X-Partition": "1"})
    assert strong.status_code == 201
    store = a._transport.app.service.storage  # type: ignore[attr-defined]
    before = store.synced_commits
    assert (await a.post("/v1/app1/q", content=b"4", headers=APP1)).status_code == 201
    assert store.synced_commits > before  # now strong: fsynced
    refused = await a.post("/v1/app1/q", content=b"5", headers={**APP1, "X-Partition": "4"})
    assert refused.status_code == 400
    assert refused.json()["error_msg"] == {"partition": "4 is greater than maximum value 3"}


async def test_a_queue_deleted_elsewhere_is_gone_for_writers_at_once(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = pair
    assert (await a.post("/v1/app1", json={"queue_name": "q"}, headers=APP1)).status_code == 201
    assert (await a.post("/v1/app1/q", content=b"1", headers=APP1)).status_code == 201
    assert (await b.delete("/v1/app1/q", headers=APP1)).status_code == 200
    gone = await a.post("/v1/app1/q", content=b"2", headers=APP1)
    assert gone.status_code == 404
    assert gone.json()["error_msg"] == {"InvalidQueueName": "Queue of that name was not found."}
    assert (await a.get("/v1/app1/q", headers=APP1)).status_code == 404
