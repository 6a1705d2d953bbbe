"""The client's retry rules, timeouts and connection reuse, through a stand-in that misbehaves
in front of a real ``queuey serve`` (tests/test_client_support.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from queuey.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    Retry,
    StorageUnavailable,
    TimedOut,
    TooManyRequests,
)
from tests.conftest import Server, free_port
from tests.test_client_support import KEY, Standin, configure, error_body, unique

QUICK = Retry(attempts=3, backoff=0.05, max_backoff=0.2)
UNAVAILABLE: tuple[str, int, dict[str, str], dict[str, Any]] = (
    "answer",
    503,
    {},
    error_body("StorageUnavailable", "The message store is unavailable; try again later."),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(configure(tmp_path_factory.mktemp("retry"))).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def standin(server: Server) -> Iterator[Standin]:
    with Standin(server.url) as s:
        yield s


def stored(server: Server, queue: str) -> list[str]:
    with Client(server.url, app="app1", key=KEY) as direct:
        return [m.body for m in direct.queue(queue).iter()]


def posts(standin: Standin) -> list[str]:
    """The idempotency keys of the posts the stand-in passed on."""
    return [s.headers.get("x-idempotency-key", "") for s in standin.seen if s.method == "POST"]


def test_a_post_retried_after_a_dropped_connection_is_stored_once(
    server: Server, standin: Standin
) -> None:
    with Client(standin.url, app="app1", key=KEY, retry=QUICK) as client:
        queue = client.queue(unique())
        queue.create()
        standin.seen.clear()
        standin.plan = ["drop"]  # the server stores it; the answer never arrives
        sent = queue.post("once")
    keys = posts(standin)
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 32
    assert stored(server, queue.name) == ["once"]
    # The retry was answered as the first post was: the same message.
    with Client(server.url, app="app1", key=KEY) as direct:
        assert direct.queue(queue.name).read()[0].message_id == sent.message_id


def test_a_batch_retried_after_a_dropped_connection_is_stored_once(
    server: Server, standin: Standin
) -> None:
    with Client(standin.url, app="app1", key=KEY, retry=QUICK) as client:
        queue = client.queue(unique())
        queue.create()
        standin.seen.clear()
        standin.plan = ["drop", UNAVAILABLE]
        queue.post_many([{"body": "a"}, {"body": "b", "idempotency_key": "mine"}])
    bodies = [s.json()["messages"] for s in standin.seen]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert bodies[0][1]["idempotency_key"] == "mine"
    assert sorted(stored(server, queue.name)) == ["a", "b"]


def test_a_post_without_a_key_is_not_resent(server: Server, standin: Standin) -> None:
    with Client(standin.url, app="app1", key=KEY, retry=QUICK, idempotent_posts=False) as client:
        queue = client.queue(unique())
        queue.create()
        standin.seen.clear()
        standin.plan = ["drop"]
        with pytest.raises(ConnectionFailed) as failed:
            queue.post("maybe")
        assert failed.value.status is None
        assert str(failed.value).startswith(f"cannot reach {standin.url}")
        # Nor after a 503 (on Cassandra it may have been stored).
        standin.plan = [UNAVAILABLE]
        with pytest.raises(StorageUnavailable) as unavailable:
            queue.post("unknown")
        assert unavailable.value.status == 503
    assert posts(standin) == ["", ""]
    assert stored(server, queue.name) == ["maybe"]


def test_reads_and_acks_are_resent_claims_and_releases_are_not(standin: Standin) -> None:
    with Client(standin.url, app="app1", key=KEY, retry=QUICK) as client:
        queue = client.queue(unique())
        queue.create()
        group = queue.group("g")
        group.create(lease_seconds=1)
        queue.post_many([{"body": "a"}, {"body": "b"}])
        standin.plan = [UNAVAILABLE, "drop"]
        assert {m.body for m in queue.read()} == {"a", "b"}

        standin.plan = ["drop"]  # the server leased them; the consumer never heard
        with pytest.raises(ConnectionFailed):
            group.claim(limit=1)
        standin.plan = [UNAVAILABLE]
        with pytest.raises(StorageUnavailable):
            group.claim(limit=1)
        [delivery] = group.claim(limit=1)
        standin.plan = ["drop"]
        assert group.ack([delivery]) == [delivery.receipt]  # accepted again when resent
        [other] = group.claim(limit=1, wait=2)
        standin.plan = ["drop"]
        with pytest.raises(ConnectionFailed):
            group.release([other])
    claims = [s for s in standin.seen if s.path.endswith("/claim")]
    assert len(claims) == 4  # each sent once
    assert len([s for s in standin.seen if s.path.endswith("/ack")]) == 2


def test_connection_refused_is_retried_then_raised() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with Client(url, app="app1", key=KEY, retry=Retry(attempts=3, backoff=0.1)) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as refused:
            client.queue("q").read()
    # Three pauses of 0.05..0.1, 0.1..0.2, 0.2..0.4 s.
    assert 0.35 <= time.monotonic() - started < 5
    assert str(refused.value).startswith(f"cannot reach {url}: ")
    assert refused.value.cause is not None


def test_too_many_requests_waits_retry_after(standin: Standin) -> None:
    refused = ("answer", 429, {"Retry-After": "1"}, error_body("TooManyRequests", "Slow down."))
    with Client(standin.url, app="app1", key=KEY, retry=QUICK) as client:
        queue = client.queue(unique())
        queue.create()
        standin.plan = [refused]
        started = time.monotonic()
        assert queue.post("after a pause").partition == 1
        assert time.monotonic() - started >= 1.0
        # More than max_retry_after: raised at once.
        standin.plan = [
            ("answer", 429, {"Retry-After": "3600"}, error_body("TooManyRequests", "Later."))
        ]
        with pytest.raises(TooManyRequests) as later:
            queue.read()
    assert later.value.retry_after == 3600


def test_timeouts_are_configurable_and_long_polls_get_their_wait(standin: Standin) -> None:
    with Client(standin.url, app="app1", key=KEY, timeout=0.3, retry=None) as client:
        group = client.queue("q").group("g")
        standin.plan = ["hang"]
        started = time.monotonic()
        with pytest.raises(TimedOut):
            client.queue("q").read()
        assert 0.25 < time.monotonic() - started < 2
        standin.plan = ["hang"]
        started = time.monotonic()
        with pytest.raises(TimedOut):
            group.claim(wait=1)  # the server may hold it 1 s: the timeout is 1.3 s
        assert 1.25 < time.monotonic() - started < 3


def test_connections_are_pooled(standin: Standin) -> None:
    with Client(standin.url, app="app1", key=KEY) as client:
        queue = client.queue(unique())
        queue.create()
        for i in range(10):
            queue.post(f"m{i}")
        assert len(list(queue.iter(page_size=3))) == 10
    assert len(standin.seen) > 15
    assert standin.connections == 1


async def test_the_async_client_resends_a_keyed_post_once(server: Server, standin: Standin) -> None:
    async with AsyncClient(standin.url, app="app1", key=KEY, retry=QUICK) as client:
        queue = client.queue(unique())
        await queue.create()
        standin.seen.clear()
        standin.plan = ["drop", UNAVAILABLE]
        await queue.post("once")
        standin.plan = ["drop"]
        with pytest.raises(ConnectionFailed):
            await queue.group("none").claim()
    keys = posts(standin)
    assert len(keys) == 4 and len(set(keys[:3])) == 1
    assert stored(server, queue.name) == ["once"]
