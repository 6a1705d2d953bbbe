"""Cassandra: no message is written under an id older than half its queue's settle delay.

A range read shows a message once its id is older than the settle delay (SPEC §4);
a reader paging with ``since``, and a group whose cursor moved on, never look
behind that again. A post whose message write failed (or whose web node died)
after it recorded its idempotency key leaves the key's record without its
message; the retry completes it. Completed under the recorded id, seconds
later, the message showed behind every such reader: an at_most_once group
never leased it (its ``acknowledged`` counter stayed one short of the
messages stored: the chaos run's violation), an at_least_once group never
delivered it. The retry now gives the key a fresh id (``idempotency.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from queuey.api.app import storage_for
from queuey.config import Settings
from queuey.storage.base import NewMessage, Posted, Queue, QueueSettings, StoreUnavailable
from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.idempotency import Freshness, age
from queuey.storage.groups import Group, GroupSettings
from queuey.storage.keys import MessageKey
from tests.conftest import KEYS

pytestmark = pytest.mark.cassandra

#: The settle delay of every queue here: ids are written up to 1 s old, replaced after 2 s.
SETTLE = 2.0
FRESH = Freshness.of(SETTLE)


@pytest.fixture
async def store(cassandra_keyspace: str) -> AsyncIterator[CassandraStorage]:
    settings = Settings(
        storage_url=cassandra_keyspace,
        application_keys=KEYS,
        storage_settle_weak=SETTLE,
        storage_settle_strong=SETTLE,
        storage_settle_very_strong=SETTLE,
    )
    storage = storage_for(settings)
    assert isinstance(storage, CassandraStorage)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.close()


def keyed(body: str, key: str) -> NewMessage:
    return NewMessage(body, "text/plain", 3600, 1, idempotency_key=key)


async def new_queue(store: CassandraStorage) -> Queue:
    queue, created = await store.create_queue("app", "q", QueueSettings())
    assert created
    return queue


async def recorded(store: CassandraStorage, queue: Queue, ikey: str) -> MessageKey:
    """The id the key's record names now."""
    return (await store._keys.current(uuid.UUID(queue.handle), ikey)).key


async def failed_post(
    store: CassandraStorage, queue: Queue, ikey: str, monkeypatch: pytest.MonkeyPatch
) -> MessageKey:
    """A post whose key is recorded and whose message write fails; the recorded id."""

    async def failing(*args: Any) -> None:
        raise StoreUnavailable("the message write failed")

    with monkeypatch.context() as patch:
        patch.setattr(store._messages, "send", failing)
        with pytest.raises(StoreUnavailable):
            await store.post_messages(queue, [keyed("first", ikey)])
    return await recorded(store, queue, ikey)


async def until_age(key: MessageKey, seconds: float) -> None:
    await asyncio.sleep(max(0.0, seconds - age(key)))


async def claim_bodies(store: CassandraStorage, group: Group) -> list[str]:
    """Claim everything available and acknowledge it; the bodies."""
    found = await store.claim(group, [1], 100, None, 10_000)
    if found:
        settled = await store.settle(group, "ack", [d.receipt for d in found], 0)
        assert settled.lost == []
    return [d.message.body for d in found]


def test_freshness_limits() -> None:
    assert Freshness.of(SETTLE) == Freshness(1.0, 1.5, 2.0)
    assert Freshness.of(5.0) == Freshness(2.5, 3.0, 3.5)
    assert Freshness.of(600.0) == Freshness(300.0, 300.5, 301.0)
    assert not Freshness.of(0.0).limited  # nothing hidden: ids are written whatever their age


async def test_a_key_completed_after_the_cursors_passed_its_id_is_still_delivered(
    store: CassandraStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos run's case: the completion lands behind an at_most_once group's cursor
    (and an at_least_once one's, and a ``since`` reader's) unless it takes a fresh id."""
    queue = await new_queue(store)
    amo, _ = await store.create_group(
        queue, "amo", GroupSettings(guarantee="at_most_once"), "earliest"
    )
    alo, _ = await store.create_group(
        queue, "alo", GroupSettings(guarantee="at_least_once"), "earliest"
    )
    old = await failed_post(store, queue, "k1", monkeypatch)
    (second,) = await store.post_messages(queue, [keyed("second", "k2")])
    assert second.key > old
    await until_age(second.key, SETTLE + 0.1)
    for group in (amo, alo):
        assert await claim_bodies(store, group) == ["second"]
        await store.report(group)  # the cursor moves past the acknowledged message
    assert [m.body for m in await store.read_range(queue, 1, None, 10, False)] == ["second"]

    (again,) = await store.post_messages(queue, [keyed("first, sent again", "k1")])
    assert again.key > second.key, "completed under its old id, behind every cursor"
    assert await store.post_messages(queue, [keyed("third time", "k1")]) == [again]
    await until_age(again.key, SETTLE + 0.1)
    for group in (amo, alo):
        assert await claim_bodies(store, group) == ["first, sent again"]
        report = await store.report(group)
        assert report.counters.acknowledged == 2 == await store.count_messages(queue)
    after = await store.read_range(queue, 1, second.key, 10, False)
    assert [m.body for m in after] == ["second", "first, sent again"]
    assert await store.get_messages(queue, [(1, old)]) == []


async def test_ids_that_aged_while_their_keys_were_recorded_are_not_written(
    store: CassandraStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the keys took longer than half the settle delay: nothing is written (503),
    and the retry, once the old id may be replaced, stores the message under a fresh one."""
    queue = await new_queue(store)
    record = store._keys.record

    async def slow(*args: Any) -> Any:
        found = await record(*args)
        await asyncio.sleep(FRESH.write_by + 0.2)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(store._keys, "record", slow)
        with pytest.raises(StoreUnavailable):
            await store.post_messages(queue, [keyed("slow", "k")])
    old = await recorded(store, queue, "k")
    assert await store.get_messages(queue, [(1, old)]) == []
    await until_age(old, FRESH.rekey_after + 0.1)
    (again,) = await store.post_messages(queue, [keyed("again", "k")])
    assert again.key > old and age(again.key) < SETTLE
    assert [m.body for m in await store.get_messages(queue, [(1, again.key)])] == ["again"]
    assert await store.count_messages(queue) == 1


async def test_a_retry_between_the_limits_is_unavailable(
    store: CassandraStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``write_by`` a write begun in time may still be landing: neither written again
    nor replaced until ``rekey_after``."""
    queue = await new_queue(store)
    old = await failed_post(store, queue, "k", monkeypatch)
    await until_age(old, (FRESH.write_by + FRESH.rekey_after) / 2)
    with pytest.raises(StoreUnavailable):
        await store.post_messages(queue, [keyed("too early", "k")])
    assert await recorded(store, queue, "k") == old
    await until_age(old, FRESH.rekey_after + 0.1)
    (again,) = await store.post_messages(queue, [keyed("in time", "k")])
    assert again.key != old
    assert await store.count_messages(queue) == 1


async def test_a_write_that_lands_after_its_key_got_a_new_id_never_shows(
    store: CassandraStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first post's write is held up (begun in time, landing late) while a retry gives
    the key a new id: the late write loses to the old id's tombstone (it is stamped at its
    id's time), its mark finds the key moved on, and both posts answer the new id."""
    queue = await new_queue(store)
    send = store._messages.send
    held: list[MessageKey] = []

    async def held_up(qid: uuid.UUID, bound: Any, level: int) -> None:
        if not held:  # the first post's write only
            held.append(await recorded(store, queue, "k"))
            await until_age(held[0], FRESH.rekey_after + 1.0)
        await send(qid, bound, level)

    monkeypatch.setattr(store._messages, "send", held_up)
    first = asyncio.create_task(store.post_messages(queue, [keyed("first", "k")]))
    while not held:
        await asyncio.sleep(0.01)
    await until_age(held[0], FRESH.rekey_after + 0.2)
    (retried,) = await store.post_messages(queue, [keyed("retried", "k")])
    answers: list[Posted] = await first
    assert answers == [retried] and retried.key != held[0]
    found = await store.get_messages(queue, [(1, held[0]), (1, retried.key)])
    assert [(m.key, m.body) for m in found] == [(retried.key, "retried")]
    assert await store.count_messages(queue) == 1
