"""The storage contract of ``queuey.storage.base``, one suite for every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from queuey.storage.base import (
    NewMessage,
    Queue,
    QueueNotFound,
    QueueSettings,
    Storage,
    StorageUnavailable,
)
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey


def msg(body: str, partition: int = 1, ttl: int = 3600) -> NewMessage:
    return NewMessage(body=body, content_type="text/plain", ttl=ttl, partition=partition)


async def new_queue(storage: Storage, name: str = "q", **settings: object) -> Queue:
    queue, created = await storage.create_queue("app", name, QueueSettings(**settings))  # type: ignore[arg-type]
    assert created
    return queue


async def bodies(storage: Storage, queue: Queue, partition: int = 1, **kw: object) -> list[str]:
    args: dict[str, object] = {"since": None, "limit": 1000, "descending": False, **kw}
    found = await storage.read_range(queue, partition, **args)  # type: ignore[arg-type]
    return [m.body for m in found]


async def test_create_is_idempotent_and_keeps_settings(storage: Storage) -> None:
    first = await new_queue(storage, partitions=3, type="public", principles=("app:x",))
    again, created = await storage.create_queue("app", "q", QueueSettings(partitions=9))
    assert not created
    assert again.settings == QueueSettings(3, "public", "strong", ("app:x",))
    assert again.created == first.created
    assert await storage.get_queue("app", "q") == first
    assert await storage.get_queue("other", "q") is None


async def test_update_never_shrinks_partitions(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=4)
    grown = await storage.update_queue(queue, QueueSettings(partitions=6, consistency="weak"))
    assert (grown.partitions, grown.settings.consistency) == (6, "weak")
    kept = await storage.update_queue(queue, QueueSettings(partitions=2))
    assert kept.partitions == 6


async def test_list_pages_in_binary_name_order(storage: Storage) -> None:
    names = ["b", "a", "B", "a.b", "a-b", "_z", "9"]
    for name in names:
        await new_queue(storage, name)
    await storage.create_queue("other", "c", QueueSettings())
    listed = [q.name for q in await storage.list_queues("app", None, 100)]
    assert listed == sorted(names)
    assert [q.name for q in await storage.list_queues("app", "a", 2)] == ["a", "a-b"]
    assert [q.name for q in await storage.list_queues("app", "a0", 100)] == ["b"]


async def test_keys_increase_and_reads_follow_key_order(storage: Storage) -> None:
    queue = await new_queue(storage)
    keys: list[MessageKey] = []
    for i in range(5):
        keys += await storage.post_messages(queue, [msg(f"{i}a"), msg(f"{i}b")])
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert await bodies(storage, queue) == [f"{i}{s}" for i in range(5) for s in "ab"]
    assert await bodies(storage, queue, descending=True, limit=3) == ["4b", "4a", "3b"]
    since = await bodies(storage, queue, since=keys[4])
    assert since == ["2a", "2b", "3a", "3b", "4a", "4b"]  # inclusive
    # A pure time bound (tail b"") includes every message of that tick.
    assert await bodies(storage, queue, since=MessageKey(keys[4].ts, b"")) == since
    # Descending scans go back from since, inclusive: paging backwards.
    back = await bodies(storage, queue, since=keys[5], descending=True, limit=3)
    assert back == ["2b", "2a", "1b"]
    assert await bodies(storage, queue, since=keys[0], descending=True) == ["0a"]
    before_all = MessageKey(keys[0].ts - 1, b"")
    assert await bodies(storage, queue, since=before_all, descending=True) == []
    assert await bodies(storage, queue, since=MessageKey(keys[9].ts, b""), descending=True) == [
        f"{i}{s}" for i in reversed(range(5)) for s in "ba"
    ]


async def test_partitions_are_separate(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=3)
    await storage.post_messages(queue, [msg("one", 1), msg("two", 2), msg("two-b", 2)])
    assert await bodies(storage, queue, 1) == ["one"]
    assert await bodies(storage, queue, 2) == ["two", "two-b"]
    assert await bodies(storage, queue, 3) == []


async def test_get_put_delete_by_key(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=2)
    (key,) = await storage.post_messages(queue, [msg("first")])
    missing = MessageKey(key.ts + 1, key.tail)
    found = await storage.get_messages(queue, [(1, missing), (1, key), (2, key)])
    assert [(m.key, m.body) for m in found] == [(key, "first")]
    await storage.put_messages(queue, [(1, key), (2, missing)], "new", "application/x", 60)
    found = await storage.get_messages(queue, [(2, missing), (1, key)])
    assert [(m.partition, m.body, m.content_type) for m in found] == [
        (2, "new", "application/x"),
        (1, "new", "application/x"),
    ]
    await storage.delete_messages(queue, [(1, key), (1, missing)])
    assert await storage.get_messages(queue, [(1, key)]) == []
    assert await bodies(storage, queue, 2) == ["new"]


async def test_expired_messages_vanish_and_are_purged(storage: Storage) -> None:
    queue = await new_queue(storage)
    await storage.post_messages(queue, [msg("short", ttl=1), msg("long", ttl=3600)])
    assert await storage.count_messages(queue) == 2
    await asyncio.sleep(1.3)
    assert await bodies(storage, queue) == ["long"]
    assert await storage.count_messages(queue) == 1
    purge = getattr(storage, "purge", None)
    if purge is not None:  # backends with native TTL (Cassandra) have nothing to purge
        assert await purge() >= 1


async def test_deleted_queue_is_gone_and_its_name_starts_afresh(storage: Storage) -> None:
    queue = await new_queue(storage)
    await storage.post_messages(queue, [msg("old")])
    await storage.delete_queue(queue)
    assert await storage.get_queue("app", "q") is None
    with pytest.raises(QueueNotFound):
        await storage.post_messages(queue, [msg("late")])
    again = await new_queue(storage)
    assert await bodies(storage, again) == []
    assert await storage.count_messages(again) == 0


async def test_concurrent_writers_get_distinct_increasing_keys(storage: Storage) -> None:
    queue = await new_queue(storage, consistency="weak")
    batches = await asyncio.gather(
        *(storage.post_messages(queue, [msg(f"{i}")]) for i in range(200))
    )
    keys = [k for batch in batches for k in batch]
    assert len(set(keys)) == 200
    stored = await storage.read_range(queue, 1, None, 1000, False)
    assert [m.key for m in stored] == sorted(keys)


async def test_key_timestamps_are_now(storage: Storage) -> None:
    queue = await new_queue(storage)
    before = time.time()
    (key,) = await storage.post_messages(queue, [msg("x")])
    seconds = (key.ts - UNIX_EPOCH_TICKS) / 10_000_000
    assert before - 1 <= seconds <= time.time() + 1


async def test_closed_store_is_unavailable(storage: Storage) -> None:
    queue = await new_queue(storage)
    await storage.close()
    with pytest.raises(StorageUnavailable):
        await storage.ping()
    with pytest.raises(StorageUnavailable):
        await storage.post_messages(queue, [msg("x")])
    with pytest.raises(StorageUnavailable):
        await storage.get_queue("app", "q")
