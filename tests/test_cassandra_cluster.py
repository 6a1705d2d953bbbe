"""Queuey on a real three-node Cassandra cluster (127.0.0.1-3, replication 3), nodes failing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from queuey.api.app import create_app
from queuey.config import Settings
from tests.cassandra_node import Nodes, unavailable
from tests.conftest import APP1, KEYS, Server, write_config

pytestmark = [pytest.mark.cassandra, pytest.mark.cluster]


@pytest.fixture(scope="module")
def cluster(cassandra_nodes: Nodes) -> Iterator[Nodes]:
    try:
        cassandra_nodes.ensure(3)
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        unavailable(f"{type(exc).__name__}: {exc}")
    yield cassandra_nodes


@pytest.fixture
def revive(cluster: Nodes) -> Iterator[None]:
    """After the test every node runs again, whatever the test killed."""
    yield
    for node in (1, 2, 3):
        if not cluster.runner.is_up(node):
            cluster.runner.restart_node(node)


@pytest.fixture
def cluster_url(cluster: Nodes) -> str:
    keyspace = f"c_{uuid.uuid4().hex[:12]}"
    return f"cassandra://127.0.0.1,127.0.0.2,127.0.0.3/{keyspace}?replication=3"


@pytest.fixture
async def client(cluster_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        storage_url=cluster_url,
        application_keys=KEYS,
        storage_settle_weak=0.0,
        storage_settle_strong=0.0,
    )
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://queuey.test", timeout=60
        ) as c:
            yield c


async def post(client: httpx.AsyncClient, queue: str, body: str) -> httpx.Response:
    return await client.post(f"/v1/app1/{queue}", content=body, headers=APP1)


async def read_all(client: httpx.AsyncClient, queue: str) -> list[str]:
    response = await client.get(f"/v1/app1/{queue}", headers=APP1)
    assert response.status_code == 200, response.text
    return [m["body"] for m in response.json()["messages"]]


async def make(client: httpx.AsyncClient, name: str, consistency: str) -> None:
    body = {"queue_name": name, "consistency": consistency}
    response = await client.post("/v1/app1", json=body, headers=APP1)
    assert response.status_code == 201, response.text


@pytest.mark.usefixtures("revive")
async def test_one_node_killed_strong_keeps_working_and_loses_nothing(
    client: httpx.AsyncClient, cluster: Nodes
) -> None:
    await make(client, "orders", "strong")
    acknowledged = []
    for i in range(20):
        assert (await post(client, "orders", f"before {i}")).status_code == 201
        acknowledged.append(f"before {i}")
    cluster.runner.kill(3)
    for i in range(20):
        response = await post(client, "orders", f"during {i}")
        assert response.status_code == 201, response.text
        acknowledged.append(f"during {i}")
    assert await read_all(client, "orders") == acknowledged
    cluster.runner.restart_node(3)
    assert await read_all(client, "orders") == acknowledged


@pytest.mark.usefixtures("revive")
async def test_two_nodes_down_strong_writes_fail_weak_ones_work(
    client: httpx.AsyncClient, cluster: Nodes
) -> None:
    await make(client, "strict", "strong")
    await make(client, "loose", "weak")
    assert (await post(client, "loose", "one")).status_code == 201
    cluster.runner.kill(2)
    cluster.runner.kill(3)
    # Until the failure detector marks both nodes down (seconds), requests routed to them
    # time out. A weak write attempted then may or may not be stored (at most once), and
    # "one", acknowledged by a single replica, may have been on a killed node only.
    acknowledged: list[str] = []
    deadline = time.monotonic() + 90
    attempt = 0
    while True:
        attempt += 1
        response = await post(client, "loose", f"attempt {attempt}")
        if response.status_code == 201:
            acknowledged.append(f"attempt {attempt}")
            break
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, "weak writes never recovered with one node up"
        await asyncio.sleep(1)
    refused = await post(client, "strict", "not enough replicas")
    assert refused.status_code == 503
    assert list(refused.json()["error_msg"]) == ["StorageUnavailable"]
    assert refused.json()["status"] == "error"
    bodies = await read_all(client, "loose")
    assert [b for b in bodies if b in acknowledged] == acknowledged
    heartbeat = await client.get("/__heartbeat__")
    assert heartbeat.status_code == 200  # node 1 still answers


def test_two_web_nodes_and_a_since_reader_see_every_message_once(
    cluster_url: str, tmp_path: Path, serve: type[Server]
) -> None:
    """Ids made on two web nodes are not in commit order; the settle delay covers that."""
    config = write_config(tmp_path / "q.toml", cluster_url, 1)
    text = config.read_text().replace("settle_strong = 0.0", "settle_strong = 2.0")
    config.write_text(text)
    servers = [serve(config).start(120), serve(config).start(120)]
    with httpx.Client(base_url=servers[0].url, headers=APP1, timeout=60) as http:
        assert http.post("/v1/app1", json={"queue_name": "shared"}).status_code == 201

    acknowledged: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    writers_done = threading.Event()
    seen: list[str] = []

    def write(url: str, count: int) -> None:
        with httpx.Client(base_url=url, headers=APP1, timeout=60) as http:
            for i in range(count):
                r = http.post("/v1/app1/shared", content=f"{url} {i}")
                if r.status_code != 201:
                    errors.append(r.text)
                    continue
                with lock:
                    acknowledged.append(r.json()["messages"][0]["key"])

    def read() -> None:
        since = ""
        with httpx.Client(base_url=servers[1].url, headers=APP1, timeout=60) as http:
            quiet_since: float | None = None
            while True:
                page = http.get("/v1/app1/shared", params={"since": since, "limit": 100})
                ids = [m["message_id"] for m in page.json()["messages"]]
                if since and ids and ids[0] == since:
                    ids = ids[1:]
                seen.extend(ids)
                if ids:
                    since = ids[-1]
                    quiet_since = None
                elif writers_done.is_set():
                    # Done once nothing new came for longer than the settle delay.
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 4:
                        return
                time.sleep(0.05)

    writers = [threading.Thread(target=write, args=(s.url, 60)) for s in servers for _ in range(2)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    reader.join(120)
    assert not errors
    assert len(acknowledged) == 240
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(acknowledged)
