"""The blocking client against a real ``queuey serve`` over a socket: every method, the errors,
consumer groups, ``consume``, and ``iter``/``consume`` across a server restart.

(The asyncio client: test_client_async.py; retries: test_client_retry.py; the
event-stream parser: test_client_sse.py; the shell verbs: test_client_cli.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from queuey.client import (
    AccessDenied,
    Client,
    Delivery,
    InvalidApplicationKey,
    InvalidGroupName,
    InvalidQueueName,
    InvalidUpdate,
    LeaseLost,
    Message,
    NotFound,
    Queue,
    QueueyError,
    Retry,
    Sent,
    TooManyRequests,
    ValidationError,
)
from tests.conftest import Server
from tests.test_client_support import (
    KEY,
    LIMITED_KEY,
    OTHER_KEY,
    configure,
    restart,
    unique,
    wait_until,
)

#: Quick retries, so that a restarting server costs the tests little time.
QUICK = Retry(attempts=20, backoff=0.05, max_backoff=0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that do not stop it (each uses its own queues)."""
    running = Server(configure(tmp_path_factory.mktemp("client"))).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, app="app1", key=KEY, timeout=10) as c:
        yield c


@pytest.fixture
def queue(client: Client) -> Queue:
    q = client.queue(unique())
    q.create(partitions=2)
    return q


# -- queues ---------------------------------------------------------------------------


def test_create_update_settings_delete(client: Client) -> None:
    name = unique("user:42+x@y=z~")  # every character a queue name may hold
    q = client.queue(name)
    created = q.create(partitions=2, consistency="weak", type="public")
    assert created["queue_name"] == name
    assert (created["partitions"], created["consistency"], created["type"]) == (2, "weak", "public")
    # Creating it again changes nothing and answers its settings.
    assert q.create(partitions=5) == created
    updated = q.update(partitions=3, principles=["app:app2"])
    assert (updated["partitions"], updated["principles"]) == (3, ["app:app2"])
    with pytest.raises(InvalidUpdate):
        q.update(partitions=1)
    q.post("one")
    settings = q.settings(count=True)
    assert (settings["partitions"], settings["count"]) == (3, 1)
    q.delete()
    with pytest.raises(InvalidQueueName) as missing:
        q.read()
    assert isinstance(missing.value, NotFound)
    assert missing.value.status == 404
    assert missing.value.error_msg == {"InvalidQueueName": "Queue of that name was not found."}
    with pytest.raises(InvalidQueueName):
        q.settings()


def test_queues_pages_through_every_queue_once(server: Server) -> None:
    # app2 has only the queues of this test.
    with Client(server.url, app="app2", key=OTHER_KEY) as other:
        names = sorted(unique() for _ in range(7))
        for name in names:
            other.queue(name).create(partitions=2)
        assert [item["queue_name"] for item in other.queues(page_size=3)] == names
        detailed = list(other.queues(details=True, count=True, page_size=2))
        assert [item["queue_name"] for item in detailed] == names
        assert all(item["partitions"] == 2 and item["count"] == 0 for item in detailed)


# -- messages -------------------------------------------------------------------------


def test_post_and_read(queue: Queue) -> None:
    sent = queue.post("hello", ttl=3600, partition=2, content_type="text/x-greeting")
    assert isinstance(sent, Sent) and sent.partition == 2 and len(sent.message_id) == 32
    batch = queue.post_many(
        [
            {"body": "a", "partition": 1},
            {"body": "b", "partition": 2, "ttl": 60},
            {"body": "c", "partition": 1},
        ]
    )
    assert [s.partition for s in batch[:2]] == [1, 2]
    assert queue.post(b"bytes too", partition=1).partition == 1

    [greeting] = queue.read(partitions=[2], limit=1)
    assert greeting == Message(sent.message_id, sent.timestamp, "hello", 2, "text/x-greeting")
    both = queue.read(partitions=[1, 2])
    assert {m.body for m in both} == {"hello", "a", "b", "c", "bytes too"}
    newest = queue.read(partitions=[2], order="descending", limit=1)
    assert newest[0].message_id == batch[1].message_id
    # since is inclusive, by id or by timestamp (a string, a number or a datetime).
    assert queue.read(since=sent.message_id, partitions=[2])[0].body == "hello"
    moment = datetime.fromtimestamp(float(batch[0].timestamp) - 0.001, UTC)  # floats round
    assert "a" in [m.body for m in queue.read(since=moment, partitions=[1])]
    assert queue.read(since=time.time() + 60, partitions=[1, 2]) == []
    # wait is passed on (a server that does not hold reads answers at once).
    assert queue.read(since=time.time() + 60, wait=1) == []


def test_get_put_and_delete_by_id(queue: Queue) -> None:
    first = queue.post("first", partition=1)
    second = queue.post("second", partition=2)
    found = queue.get([second, first.ref])
    assert [m.body for m in found] == ["second", "first"]
    queue.put([first], "changed", ttl=600, content_type="application/json")
    [changed] = queue.get([f"1:{first.message_id}"])
    assert (changed.body, changed.content_type) == ("changed", "application/json")
    queue.delete_messages([first, second])
    assert queue.get([first, second]) == []


def test_iter_gives_every_message_once_in_pages(queue: Queue) -> None:
    sent = queue.post_many([{"body": f"m{i}", "partition": 1 + i % 2} for i in range(205)])
    got = list(queue.iter(page_size=20))
    assert sorted(m.message_id for m in got) == sorted(s.message_id for s in sent)
    assert len({m.message_id for m in got}) == 205
    for partition in (1, 2):
        mine = [m.message_id for m in got if m.partition == partition]
        assert mine == [s.message_id for s in sent if s.partition == partition]
    # From an id (inclusive), in one partition.
    middle = [s for s in sent if s.partition == 1][50]
    rest = list(queue.iter(since=middle.message_id, partitions=[1], page_size=7))
    assert rest[0].message_id == middle.message_id and len(rest) == 103 - 50


def test_iter_follow_picks_up_new_messages(queue: Queue) -> None:
    stop = threading.Event()
    got: list[str] = []

    def follow() -> None:
        for message in queue.iter(follow=True, stop=stop, wait=1, poll=0.05):
            got.append(message.body)

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        for i in range(5):
            queue.post(f"live {i}", partition=1 + i % 2)
            wait_until(lambda i=i: len(got) == i + 1)
    finally:
        stop.set()
        reader.join(10)
    assert not reader.is_alive()
    assert got == [f"live {i}" for i in range(5)]


# -- errors ---------------------------------------------------------------------------


def test_errors_carry_status_and_the_servers_words(server: Server, queue: Queue) -> None:
    with (
        Client(server.url, app="app1", key="nope") as wrong,
        pytest.raises(InvalidApplicationKey) as bad_key,
    ):
        wrong.queue(queue.name).read()
    assert bad_key.value.status == 401
    assert bad_key.value.error_msg == {
        "InvalidApplicationKey": "No application is known by that key."
    }
    with (
        Client(server.url, app="app1", key=OTHER_KEY) as stranger,
        pytest.raises(AccessDenied) as denied,
    ):
        stranger.queue(queue.name).read()
    assert denied.value.status == 403
    with Client(server.url, app="nobody", key=KEY) as lost, pytest.raises(NotFound) as nowhere:
        lost.queue("q").read()
    assert type(nowhere.value) is NotFound
    with pytest.raises(ValidationError) as invalid:
        queue.post("x", ttl=0, partition=9)
    assert invalid.value.status == 400
    assert invalid.value.fields == {
        "ttl": "0 is less than minimum value 1",
        "partition": "9 is greater than maximum value 2",
    }
    assert str(invalid.value).startswith("ttl: 0 is less than minimum value 1")


def test_too_many_requests_carries_retry_after(server: Server) -> None:
    limited = Client(server.url, app="app3", key=LIMITED_KEY, retry=None)
    with limited, pytest.raises(TooManyRequests) as refused:
        for _ in range(5):
            list(limited.queues())
    assert refused.value.status == 429
    assert refused.value.retry_after == 1
    # With retries (the default) the client waits Retry-After and goes on.
    with Client(server.url, app="app3", key=LIMITED_KEY) as patient:
        started = time.monotonic()
        for _ in range(3):
            list(patient.queues())
    assert time.monotonic() - started >= 1.0


# -- consumer groups ------------------------------------------------------------------


def test_group_methods(queue: Queue) -> None:
    group = queue.group("workers")
    settings = group.create(guarantee="exactly_once", lease_seconds=30, start="earliest")
    assert (settings["group"], settings["guarantee"], settings["lease_seconds"]) == (
        "workers",
        "exactly_once",
        30,
    )
    assert group.update(max_deliveries=5)["max_deliveries"] == 5
    assert [g["group"] for g in queue.groups()] == ["workers"]
    sent = queue.post_many([{"body": f"job {i}", "partition": 1} for i in range(4)])

    claimed = group.claim(limit=10, wait=1, consumer="me")
    assert [d.message_id for d in claimed] == [s.message_id for s in sent]
    assert all(isinstance(d, Delivery) and d.deliveries == 1 for d in claimed)
    assert claimed[0].lease_seconds == 30
    assert group.state()["partitions"][0]["consumers"] == ["me"]
    assert group.ack([claimed[0]]) == [claimed[0].receipt]
    assert group.extend(claimed[1:2], 60) == [claimed[1].receipt]
    assert group.release([claimed[2].receipt], delay=0) == [claimed[2].receipt]
    # An acknowledgement that lost its lease: LeaseLost, with what counted and what did not.
    with pytest.raises(LeaseLost) as lost:
        group.ack([claimed[2], claimed[3]])
    assert lost.value.status == 409
    assert lost.value.acknowledged == [claimed[3].receipt]
    assert lost.value.lost == [claimed[2].receipt]

    again = group.claim(limit=10)
    assert [(d.message_id, d.deliveries) for d in again] == [(sent[2].message_id, 2)]
    target = queue.client.queue(unique())
    target.create()
    published = group.ack_and_publish(again, [{"queue": target.name, "body": "done"}])
    assert [m.body for m in target.read()] == ["done"]
    assert published[0].message_id == target.read()[0].message_id

    state = group.seek("earliest")
    assert state["partitions"][0]["pending"] == 4
    assert group.state()["acknowledged"] == 3
    group.delete()
    with pytest.raises(InvalidGroupName):
        group.claim()


def test_consume_acks_on_return_and_releases_on_exception(queue: Queue) -> None:
    group = queue.group("retrying")
    group.create(guarantee="exactly_once")
    queue.post_many([{"body": "flaky"}, {"body": "steady"}])
    stop = threading.Event()
    calls: list[tuple[str, int]] = []

    def handler(delivery: Delivery) -> None:
        calls.append((delivery.body, delivery.deliveries))
        if delivery.body == "flaky" and delivery.deliveries == 1:
            raise RuntimeError("not this time")
        if len(calls) == 3:
            stop.set()

    tally = group.consume(handler, limit=10, wait=1, stop=stop)
    assert sorted(calls) == [("flaky", 1), ("flaky", 2), ("steady", 1)]
    assert (tally.handled, tally.acknowledged, tally.failed, tally.released, tally.lost) == (
        2,
        2,
        1,
        1,
        0,
    )
    state = group.state()
    assert state["acknowledged"] == 2
    assert sum(p["pending"] for p in state["partitions"]) == 0


def test_consume_extends_leases_while_the_handler_runs(queue: Queue) -> None:
    group = queue.group("slow")
    group.create(guarantee="exactly_once", lease_seconds=1)
    queue.post("slow work", partition=1)
    stop = threading.Event()
    others: list[list[Delivery]] = []

    def handler(delivery: Delivery) -> None:
        # Three lease lengths: without extensions another consumer would get it.
        for _ in range(6):
            time.sleep(0.5)
            others.append(group.claim())
        stop.set()

    tally = group.consume(handler, wait=1, stop=stop)
    assert others == [[]] * 6
    assert (tally.acknowledged, tally.lost) == (1, 0)


def test_consume_gives_back_what_it_did_not_handle(queue: Queue) -> None:
    group = queue.group("stopping")
    group.create(guarantee="at_least_once")
    queue.post_many([{"body": str(i), "partition": 1} for i in range(5)])
    stop = threading.Event()
    tally = group.consume(lambda _: stop.set(), limit=5, wait=1, stop=stop)
    assert (tally.acknowledged, tally.released) == (1, 4)
    assert group.state()["partitions"][0]["in_flight"] == 0
    # Ctrl-C in a handler: consume returns, and the message goes back too.

    def interrupted(_: Delivery) -> None:
        raise KeyboardInterrupt

    tally = group.consume(interrupted, limit=5, wait=1)
    assert (tally.acknowledged, tally.released) == (0, 4)
    assert [d.body for d in group.claim(limit=10)] == ["1", "2", "3", "4"]


def test_consume_stops_between_claims(queue: Queue) -> None:
    group = queue.group("idle")
    group.create()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    tally = group.consume(lambda _: None, wait=1, stop=stop)
    assert time.monotonic() - started < 3
    assert tally.handled == 0


# -- a server that restarts -----------------------------------------------------------


def test_iter_follow_and_consume_survive_a_server_restart(
    tmp_path: Path, serve: type[Server]
) -> None:
    server = serve(configure(tmp_path)).start()
    with Client(server.url, app="app1", key=KEY, retry=QUICK, timeout=5) as client:
        queue = client.queue("restarting")
        queue.create()
        queue.group("workers").create(guarantee="exactly_once")
        stop = threading.Event()
        read: list[str] = []
        handled: list[str] = []

        def follow() -> None:
            read.extend(m.body for m in queue.iter(follow=True, stop=stop, wait=1, poll=0.05))

        def work() -> None:
            queue.group("workers").consume(lambda d: handled.append(d.body), wait=1, stop=stop)

        threads = [threading.Thread(target=follow), threading.Thread(target=work)]
        for thread in threads:
            thread.start()
        try:
            for i in range(3):
                queue.post(f"before {i}")
            wait_until(lambda: len(read) == 3 and len(handled) == 3)
            restart(server)
            for i in range(3):
                queue.post(f"after {i}")
            wait_until(lambda: len(read) == 6 and len(handled) == 6)
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        expected = [f"before {i}" for i in range(3)] + [f"after {i}" for i in range(3)]
        assert read == expected  # each once, in order, resumed where it was
        assert sorted(handled) == sorted(expected)
        assert queue.group("workers").state()["acknowledged"] == 6


def test_no_server_imports() -> None:
    """The client talks HTTP only: importing it loads none of the server's modules."""
    import subprocess
    import sys

    code = (
        "import sys, queuey.client, queuey.client.shell; "
        "print(sorted(m for m in sys.modules if m.startswith('queuey.') "
        "and not m.startswith('queuey.client')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_errors_are_one_tree() -> None:
    assert all(
        issubclass(cls, QueueyError)
        for cls in (AccessDenied, InvalidApplicationKey, LeaseLost, TooManyRequests, NotFound)
    )
