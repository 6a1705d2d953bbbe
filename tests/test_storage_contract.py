"""The storage contract of ``queuey.storage.base``, one suite for every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from queuey.storage import keys as keys_module
from queuey.storage.base import (
    NewMessage,
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    Storage,
    StoreUnavailable,
)
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey
from queuey.storage.sqlite import SQLiteStorage


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
    with pytest.raises(StoreUnavailable):
        await storage.ping()
    with pytest.raises(StoreUnavailable):
        await storage.post_messages(queue, [msg("x")])
    with pytest.raises(StoreUnavailable):
        await storage.get_queue("app", "q")


# -- stale copies: QueueChanged and QueueNotFound ------------------------------------


async def stored_everywhere(storage: Storage, queue: Queue) -> list[str]:
    """Every body stored in any partition of the queue as it is stored now."""
    fresh = await storage.get_queue(queue.app, queue.name)
    assert fresh is not None
    found: list[str] = []
    for partition in range(1, fresh.partitions + 1):
        found += await bodies(storage, fresh, partition)
    return found


@pytest.mark.parametrize(
    "change",
    [QueueSettings(partitions=3), QueueSettings(partitions=2, consistency="weak")],
    ids=["partitions", "consistency"],
)
async def test_a_stale_copy_is_refused_and_stores_nothing(
    storage: Storage, change: QueueSettings
) -> None:
    stale = await new_queue(storage, partitions=2)
    fresh = await storage.update_queue(stale, change)
    (kept,) = await storage.post_messages(fresh, [msg("kept")])
    with pytest.raises(QueueChanged):
        await storage.post_messages(stale, [msg("one"), msg("two", 2)])
    with pytest.raises(QueueChanged):
        await storage.put_messages(stale, [(1, kept)], "overwritten", "text/plain", 60)
    assert await stored_everywhere(storage, fresh) == ["kept"]
    assert await storage.count_messages(fresh) == 1
    # The fresh copy writes.
    await storage.post_messages(fresh, [msg("new")])
    assert await stored_everywhere(storage, fresh) == ["kept", "new"]


async def test_a_copy_differing_in_type_or_principles_still_writes(storage: Storage) -> None:
    old = await new_queue(storage)
    await storage.update_queue(old, QueueSettings(type="public", principles=("app:x",)))
    await storage.post_messages(old, [msg("fine")])
    assert await stored_everywhere(storage, old) == ["fine"]


async def test_a_deleted_queue_refuses_writes_through_old_copies(storage: Storage) -> None:
    old = await new_queue(storage)
    (key,) = await storage.post_messages(old, [msg("old")])
    await storage.delete_queue(old)
    again = await new_queue(storage)  # same name, new incarnation
    assert again.handle != old.handle
    with pytest.raises(QueueNotFound):
        await storage.post_messages(old, [msg("late")])
    with pytest.raises(QueueNotFound):
        await storage.put_messages(old, [(1, key)], "late", "text/plain", 60)
    with pytest.raises(QueueNotFound):
        await storage.update_queue(old, QueueSettings(partitions=5))
    await storage.delete_queue(old)  # already gone: no error, and the new queue stays
    current = await storage.get_queue("app", "q")
    assert current == again and current.handle == again.handle
    assert current.partitions == 1
    assert await stored_everywhere(storage, again) == []


async def test_concurrent_updates_never_shrink_partitions(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=2)
    asked = [7, 3, 5, 2, 6, 4]
    await asyncio.gather(*(storage.update_queue(queue, QueueSettings(partitions=n)) for n in asked))
    stored = await storage.get_queue("app", "q")
    assert stored is not None and stored.partitions == max(asked)


# -- a call that fails midway ------------------------------------------------------

#: A lone surrogate: a str with no UTF-8 encoding, so no store can hold it.
UNENCODABLE = "\ud800"

#: Messages as (partition, body); BAD marks the one that fails. "large" is above
#: Cassandra's logged-batch limit (40 KiB), so it is written one batch per partition.
BAD = "<bad>"
SHAPES = {
    "one partition": [(1, "a"), (1, "b"), (1, BAD), (1, "c")],
    "three partitions": [(1, "a"), (2, "b"), (2, BAD), (3, "c")],
    "large": [(p, f"{p}-{i}-" + "x" * 1024) for p in (1, 2, 3) for i in range(20)] + [(2, BAD)],
}


def shaped(shape: str, bad: NewMessage) -> list[NewMessage]:
    return [bad if body == BAD else msg(body, partition) for partition, body in SHAPES[shape]]


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_message_that_cannot_be_encoded_fails_the_whole_call(
    storage: Storage, shape: str
) -> None:
    # SQLite fails inside the writer's transaction, after the rows before it;
    # Cassandra encodes every value before it sends anything.
    queue = await new_queue(storage, partitions=3)
    bad = msg(UNENCODABLE, 2)
    results = await asyncio.gather(
        storage.post_messages(queue, [msg("before", 1)]),
        storage.post_messages(queue, shaped(shape, bad)),
        storage.post_messages(queue, [msg("after", 3)]),
        return_exceptions=True,
    )
    failure = results[1]
    assert isinstance(failure, StoreUnavailable), failure  # never the raw UnicodeEncodeError
    assert isinstance(failure.__cause__, UnicodeEncodeError)
    assert sorted(await stored_everywhere(storage, queue)) == ["after", "before"]
    assert await storage.count_messages(queue) == 2
    # An overwrite that cannot be encoded changes nothing either.
    (key,) = results[0]  # type: ignore[misc]
    with pytest.raises(StoreUnavailable):
        await storage.put_messages(queue, [(1, key), (2, key)], UNENCODABLE, "text/plain", 60)
    assert [m.body for m in await storage.get_messages(queue, [(1, key), (2, key)])] == ["before"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_message_the_store_refuses_fails_its_batch(storage: Storage, shape: str) -> None:
    """A TTL beyond what the store can hold: SQLite cannot bind the expiry (a 64-bit
    overflow inside the transaction); Cassandra refuses TTLs over 20 years (the
    node answers InvalidRequest). What is stored afterwards is the contract of
    ``post_messages``: nothing, except for Cassandra's large calls, where the
    batches of the other partitions are stored."""
    is_sqlite = isinstance(storage, SQLiteStorage)
    too_long = 2**60 if is_sqlite else 20 * 365 * 86400 + 1
    queue = await new_queue(storage, partitions=3)
    bad = NewMessage(body="bad", content_type="text/plain", ttl=too_long, partition=2)
    messages = shaped(shape, bad)
    with pytest.raises(StoreUnavailable):
        await storage.post_messages(queue, messages)
    stored = sorted(await stored_everywhere(storage, queue))
    if is_sqlite or shape != "large":
        assert stored == []
    else:
        assert stored == sorted(m.body for m in messages if m.partition != 2)
    await storage.post_messages(queue, [msg("still works", 2)])
    assert await bodies(storage, queue, 2) == ["still works"]


async def test_reads_of_values_the_store_cannot_hold_are_storage_unavailable(
    storage: Storage,
) -> None:
    queue = await new_queue(storage)
    with pytest.raises(StoreUnavailable) as caught:
        await storage.get_queue("app", UNENCODABLE)
    assert isinstance(caught.value.__cause__, UnicodeEncodeError)
    with pytest.raises(StoreUnavailable):
        await storage.list_queues("app", UNENCODABLE, 10)
    assert await storage.get_queue("app", "q") == queue  # and the store goes on


# -- the key clock ----------------------------------------------------------------


async def test_keys_keep_increasing_when_the_wall_clock_steps_back(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await new_queue(storage, consistency="weak")
    posted = await storage.post_messages(queue, [msg("0a"), msg("0b")])
    real = keys_module.now_ticks
    hour = 3600 * 10_000_000
    monkeypatch.setattr(keys_module, "now_ticks", lambda: real() - hour)  # the clock steps back
    for i in range(1, 4):
        posted += await storage.post_messages(queue, [msg(f"{i}a"), msg(f"{i}b")])
    batches = await asyncio.gather(*(storage.post_messages(queue, [msg("c")]) for _ in range(20)))
    concurrent = [k for batch in batches for k in batch]
    monkeypatch.undo()  # the clock is right again
    later = await storage.post_messages(queue, [msg("z")])
    assert posted == sorted(posted) and len(set(posted)) == len(posted)
    assert min(concurrent) > posted[-1] and len(set(concurrent)) == 20
    assert later[0] > max(concurrent)
    assert all(k.ts - posted[0].ts < 10_000_000 for k in posted)  # still near the real time
    stored = await storage.read_range(queue, 1, None, 1000, False)
    assert [m.key for m in stored] == posted + sorted(concurrent) + later
