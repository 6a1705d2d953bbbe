"""The storage contract of ``queuey.storage.base``, one suite for every backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from queuey.api.app import storage_for
from queuey.config import Settings
from queuey.storage import keys as keys_module
from queuey.storage.base import (
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    Storage,
    StoreUnavailable,
)
from queuey.storage.cassandra import CassandraStorage
from queuey.storage.groups import GroupSettings, GroupStorage
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey
from queuey.storage.sqlite import SQLiteStorage
from queuey.storage.window import Receipt

#: Tests of what only Cassandra does (SQLite does it in one transaction).
ONLY_CASSANDRA = pytest.mark.parametrize("backend_url", ["cassandra"], indirect=True)


def msg(body: str, partition: int = 1, ttl: int = 3600) -> NewMessage:
    return NewMessage(body=body, content_type="text/plain", ttl=ttl, partition=partition)


async def post(storage: Storage, queue: Queue, messages: list[NewMessage]) -> list[MessageKey]:
    """Post; the keys the messages got."""
    return [posted.key for posted in await storage.post_messages(queue, messages)]


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
        keys += await post(storage, queue, [msg(f"{i}a"), msg(f"{i}b")])
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
    await post(storage, queue, [msg("one", 1), msg("two", 2), msg("two-b", 2)])
    assert await bodies(storage, queue, 1) == ["one"]
    assert await bodies(storage, queue, 2) == ["two", "two-b"]
    assert await bodies(storage, queue, 3) == []


async def test_get_put_delete_by_key(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=2)
    (key,) = await post(storage, queue, [msg("first")])
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
    await post(storage, queue, [msg("short", ttl=1), msg("long", ttl=3600)])
    assert await storage.count_messages(queue) == 2
    await asyncio.sleep(1.3)
    assert await bodies(storage, queue) == ["long"]
    assert await storage.count_messages(queue) == 1
    purge = getattr(storage, "purge", None)
    if purge is not None:  # backends with native TTL (Cassandra) have nothing to purge
        assert await purge() >= 1


async def test_deleted_queue_is_gone_and_its_name_starts_afresh(storage: Storage) -> None:
    queue = await new_queue(storage)
    await post(storage, queue, [msg("old")])
    await storage.delete_queue(queue)
    assert await storage.get_queue("app", "q") is None
    with pytest.raises(QueueNotFound):
        await post(storage, queue, [msg("late")])
    again = await new_queue(storage)
    assert await bodies(storage, again) == []
    assert await storage.count_messages(again) == 0


async def test_concurrent_writers_get_distinct_increasing_keys(storage: Storage) -> None:
    queue = await new_queue(storage, consistency="weak")
    batches = await asyncio.gather(*(post(storage, queue, [msg(f"{i}")]) for i in range(200)))
    keys = [k for batch in batches for k in batch]
    assert len(set(keys)) == 200
    stored = await storage.read_range(queue, 1, None, 1000, False)
    assert [m.key for m in stored] == sorted(keys)


async def test_key_timestamps_are_now(storage: Storage) -> None:
    queue = await new_queue(storage)
    before = time.time()
    (key,) = await post(storage, queue, [msg("x")])
    seconds = (key.ts - UNIX_EPOCH_TICKS) / 10_000_000
    assert before - 1 <= seconds <= time.time() + 1


async def test_closed_store_is_unavailable(storage: Storage) -> None:
    queue = await new_queue(storage)
    await storage.close()
    with pytest.raises(StoreUnavailable):
        await storage.ping()
    with pytest.raises(StoreUnavailable):
        await post(storage, queue, [msg("x")])
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
    (kept,) = await post(storage, fresh, [msg("kept")])
    with pytest.raises(QueueChanged):
        await post(storage, stale, [msg("one"), msg("two", 2)])
    with pytest.raises(QueueChanged):
        await storage.put_messages(stale, [(1, kept)], "overwritten", "text/plain", 60)
    assert await stored_everywhere(storage, fresh) == ["kept"]
    assert await storage.count_messages(fresh) == 1
    # The fresh copy writes.
    await post(storage, fresh, [msg("new")])
    assert await stored_everywhere(storage, fresh) == ["kept", "new"]


async def test_a_copy_differing_in_type_or_principles_still_writes(storage: Storage) -> None:
    old = await new_queue(storage)
    await storage.update_queue(old, QueueSettings(type="public", principles=("app:x",)))
    await post(storage, old, [msg("fine")])
    assert await stored_everywhere(storage, old) == ["fine"]


async def test_a_deleted_queue_refuses_writes_through_old_copies(storage: Storage) -> None:
    old = await new_queue(storage)
    (key,) = await post(storage, old, [msg("old")])
    await storage.delete_queue(old)
    again = await new_queue(storage)  # same name, new incarnation
    assert again.handle != old.handle
    with pytest.raises(QueueNotFound):
        await post(storage, old, [msg("late")])
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
        post(storage, queue, [msg("before", 1)]),
        post(storage, queue, shaped(shape, bad)),
        post(storage, queue, [msg("after", 3)]),
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
        await post(storage, queue, messages)
    stored = sorted(await stored_everywhere(storage, queue))
    if is_sqlite or shape != "large":
        assert stored == []
    else:
        assert stored == sorted(m.body for m in messages if m.partition != 2)
    await post(storage, queue, [msg("still works", 2)])
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
    posted = await post(storage, queue, [msg("0a"), msg("0b")])
    real = keys_module.now_ticks
    hour = 3600 * 10_000_000
    monkeypatch.setattr(keys_module, "now_ticks", lambda: real() - hour)  # the clock steps back
    for i in range(1, 4):
        posted += await post(storage, queue, [msg(f"{i}a"), msg(f"{i}b")])
    batches = await asyncio.gather(*(post(storage, queue, [msg("c")]) for _ in range(20)))
    concurrent = [k for batch in batches for k in batch]
    monkeypatch.undo()  # the clock is right again
    later = await post(storage, queue, [msg("z")])
    assert posted == sorted(posted) and len(set(posted)) == len(posted)
    assert min(concurrent) > posted[-1] and len(set(concurrent)) == 20
    assert later[0] > max(concurrent)
    assert all(k.ts - posted[0].ts < 10_000_000 for k in posted)  # still near the real time
    stored = await storage.read_range(queue, 1, None, 1000, False)
    assert [m.key for m in stored] == posted + sorted(concurrent) + later


# -- idempotency keys ---------------------------------------------------------------


def keyed(body: str, key: str | None, partition: int = 1, ttl: int = 3600) -> NewMessage:
    return NewMessage(body, "text/plain", ttl, partition, idempotency_key=key)


async def test_a_repeated_idempotency_key_is_answered_as_the_first_post(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=3)
    (first,) = await storage.post_messages(queue, [keyed("first", "order-1", 2)])
    assert first.partition == 2
    # Whatever its body, TTL or partition.
    assert await storage.post_messages(queue, [keyed("other", "order-1", 3, ttl=60)]) == [first]
    mixed = await storage.post_messages(
        queue, [keyed("new", None), keyed("again", "order-1"), keyed("new2", "order-2")]
    )
    assert mixed[1] == first
    assert first.key < mixed[0].key < mixed[2].key  # the call's new keys still increase
    # Compared byte for byte.
    (other,) = await storage.post_messages(queue, [keyed("case", "ORDER-1")])
    assert other.key not in (first.key, *(p.key for p in mixed))
    assert sorted(await stored_everywhere(storage, queue)) == ["case", "first", "new", "new2"]


async def test_a_key_outlives_its_message(storage: Storage) -> None:
    """Deleted or expired, the message is answered as first posted and not stored again."""
    queue = await new_queue(storage)
    deleted, short = await storage.post_messages(
        queue, [keyed("deleted", "d"), keyed("short", "s", ttl=1)]
    )
    await storage.delete_messages(queue, [(1, deleted.key)])
    await asyncio.sleep(1.3)
    again = await storage.post_messages(queue, [keyed("again", "d"), keyed("again", "s")])
    assert again == [deleted, short]
    assert await stored_everywhere(storage, queue) == []
    assert await storage.count_messages(queue) == 0


async def test_a_key_given_twice_in_one_call_is_one_message(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=2)
    posted = await storage.post_messages(
        queue, [keyed("a", "k", 1), keyed("b", None, 2), keyed("c", "k", 2), keyed("d", "k2", 1)]
    )
    assert posted[2] == posted[0] and posted[0].partition == 1  # the first item wins
    assert posted[0].key < posted[1].key < posted[3].key
    assert sorted(await stored_everywhere(storage, queue)) == ["a", "b", "d"]


async def test_keys_belong_to_one_queue_incarnation(storage: Storage) -> None:
    one = await new_queue(storage, "one")
    two = await new_queue(storage, "two")
    (a,) = await storage.post_messages(one, [keyed("a", "k")])
    (b,) = await storage.post_messages(two, [keyed("b", "k")])
    assert a.key != b.key
    await storage.delete_queue(one)
    again = await new_queue(storage, "one")  # deleting the queue forgot its keys
    (c,) = await storage.post_messages(again, [keyed("c", "k")])
    assert c.key not in (a.key, b.key)
    assert await bodies(storage, again) == ["c"]
    assert await bodies(storage, two) == ["b"]


async def test_keys_are_forgotten_after_the_window(settings: Settings) -> None:
    store = storage_for(settings.replace(idempotency_window=2))
    await store.start()
    try:
        queue = await new_queue(store)
        (first,) = await store.post_messages(queue, [keyed("first", "k")])
        assert await store.post_messages(queue, [keyed("x", "k")]) == [first]
        await asyncio.sleep(3.2)  # counted from the first post
        (later,) = await store.post_messages(queue, [keyed("later", "k")])
        assert later.key > first.key
        assert await store.post_messages(queue, [keyed("y", "k")]) == [later]
        assert await bodies(store, queue) == ["first", "later"]
    finally:
        await store.close()


async def test_posts_racing_with_one_key_store_one_message(storage: Storage) -> None:
    queue = await new_queue(storage, partitions=4)
    answers = await asyncio.gather(
        *(storage.post_messages(queue, [keyed(f"body {i}", "k", i % 4 + 1)]) for i in range(20))
    )
    assert len({a for (a,) in answers}) == 1
    (posted,) = answers[0]
    stored = await storage.read_range(queue, posted.partition, None, 10, False)
    assert [m.key for m in stored] == [posted.key]
    assert await storage.count_messages(queue) == 1


async def test_stores_sharing_the_data_store_each_key_once(
    storage: Storage, settings: Settings
) -> None:
    """Two processes on one SQLite file; two web nodes on one Cassandra cluster."""
    other = storage_for(settings)
    await other.start()
    try:
        queue = await new_queue(storage, partitions=2)
        calls = [
            store.post_messages(queue, [keyed(f"{name}{i}", f"k{i % 3}", i % 2 + 1)])
            for i in range(12)
            for name, store in (("a", storage), ("b", other))
        ]
        answers = [a for (a,) in await asyncio.gather(*calls)]
        by_key: dict[str, set[Posted]] = {}
        for i, answer in enumerate(answers):
            by_key.setdefault(f"k{i // 2 % 3}", set()).add(answer)
        assert all(len(found) == 1 for found in by_key.values()), by_key
        assert await storage.count_messages(queue) == 3
        kept = await storage.get_messages(queue, [(p.partition, p.key) for p in set(answers)])
        assert len(kept) == 3
    finally:
        await other.close()


async def test_a_failed_post_resent_with_its_keys_is_stored_once(storage: Storage) -> None:
    """SQLite stored nothing of the failed call. Cassandra recorded the keys, then the
    message batch failed (a TTL the node refuses); the resend completes the call."""
    too_long = 2**60 if isinstance(storage, SQLiteStorage) else 20 * 365 * 86400 + 1
    queue = await new_queue(storage, partitions=2)
    with pytest.raises(StoreUnavailable):
        await storage.post_messages(
            queue, [keyed("a", "ka", 1), keyed("b", "kb", 2, ttl=too_long), keyed("c", None, 2)]
        )
    assert await stored_everywhere(storage, queue) == []
    resend = [keyed("a", "ka", 1), keyed("b", "kb", 2), keyed("c", None, 2)]
    posted = await storage.post_messages(queue, resend)
    assert await storage.post_messages(queue, resend[:2]) == posted[:2]
    found = await storage.get_messages(queue, [(p.partition, p.key) for p in posted])
    assert [m.body for m in found] == ["a", "b", "c"]
    assert await storage.count_messages(queue) == 3


@ONLY_CASSANDRA
async def test_cassandra_completions_never_override_or_bring_back_a_message(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the stored flag (its write lost) a repeated key reads the message by id and,
    not finding it, writes it at the record's time: an older write than the original
    message and than its deletion, so either wins."""
    assert isinstance(storage, CassandraStorage)

    async def lost(*args: object) -> None:
        pass

    monkeypatch.setattr(storage._keys, "mark_stored", lost)
    queue = await new_queue(storage)
    kept, deleted = await storage.post_messages(queue, [keyed("kept", "k"), keyed("gone", "d")])
    await storage.delete_messages(queue, [(1, deleted.key)])

    async def missed(*args: object) -> list[Message]:
        return []  # as a replica that has not seen the message yet would answer

    monkeypatch.setattr(storage._messages, "get", missed)
    again = await storage.post_messages(queue, [keyed("other", "k"), keyed("back", "d")])
    assert again == [kept, deleted]
    monkeypatch.undo()
    found = await storage.get_messages(queue, [(1, kept.key), (1, deleted.key)])
    assert [(m.key, m.body) for m in found] == [(kept.key, "kept")]


# -- consumer groups (storage.groups.GroupStorage) ------------------------------------
# The HTTP tests (test_api_groups.py) check SPEC §6; these check what only a store
# shows: two stores on one URL (two web nodes), and Cassandra's retried writes.


def groups_of(storage: Storage) -> GroupStorage:
    return cast(GroupStorage, storage)


async def test_groups_on_two_stores_never_lease_one_message_twice(
    storage: Storage, settings: Settings
) -> None:
    """Claims racing on two stores sharing the data: one lease per message; the receipt
    secret, receipts and state are the same on both."""
    other = storage_for(settings)
    await other.start()
    try:
        one, two = groups_of(storage), groups_of(other)
        assert await one.receipt_secret() == await two.receipt_secret()
        assert len(await one.receipt_secret()) == 32
        queue = await new_queue(storage, partitions=2)
        group, created = await one.create_group(queue, "g", GroupSettings(), "earliest")
        assert created
        posted = await post(storage, queue, [msg(f"m{i}", i % 2 + 1) for i in range(40)])
        claims = [(one, two)[i % 2].claim(group, [1, 2], 3, f"c{i}", 10_000) for i in range(16)]
        found = [d for answer in await asyncio.gather(*claims) for d in answer]
        found += await two.claim(group, [1, 2], 1000, None, 10_000)
        leased = [d.message.key for d in found]
        assert len(leased) == len(set(leased))
        assert sorted(leased) == sorted(posted)
        settled = await two.settle(group, "ack", [d.receipt for d in found], 0)
        assert (len(settled.accepted), settled.lost) == (40, [])
        report = await one.report(group)
        assert (report.counters.delivered, report.counters.acknowledged) == (40, 40)
        assert [(p.in_flight, p.pending) for p in report.partitions] == [(0, 0), (0, 0)]
    finally:
        await other.close()


@ONLY_CASSANDRA
async def test_cassandra_a_retried_window_write_posts_a_dead_letter_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dead letter is posted before the window change; when that change loses a race
    and is applied again, the dead letter's idempotency key keeps it one message."""
    assert isinstance(storage, CassandraStorage)
    queue = await new_queue(storage)
    dead = await new_queue(storage, "dead")
    settings = GroupSettings(max_deliveries=1, dead_letter_queue="dead")
    group, _ = await storage.create_group(queue, "g", settings, "earliest")
    await post(storage, queue, [msg("poison")])
    (delivery,) = await storage.claim(group, [1], 10, None, 10_000)
    real = storage._groups._write
    lost: list[int] = []

    async def first_lost(*args: Any) -> bool:
        if not lost:
            lost.append(1)
            return False  # as if another node had written the window first
        return await real(*args)

    monkeypatch.setattr(storage._groups, "_write", first_lost)
    settled = await storage.settle(group, "release", [delivery.receipt], 0)
    assert settled.accepted == [delivery.receipt] and lost
    assert await bodies(storage, dead) == ["poison"]
    report = await storage.report(group)
    assert (report.counters.dead_lettered, report.partitions[0].pending) == (1, 0)


@ONLY_CASSANDRA
async def test_cassandra_ack_and_publish_cut_after_publishing_completes_on_retry(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut between publishing and acknowledging: the messages are stored, the lease is
    guarded (not delivered again when it would have ended), and the same request again
    publishes nothing new and acknowledges."""
    assert isinstance(storage, CassandraStorage)
    queue = await new_queue(storage)
    out = await new_queue(storage, "out")
    group, _ = await storage.create_group(queue, "g", GroupSettings(lease_seconds=1), "earliest")
    await post(storage, queue, [msg("in")])
    (delivery,) = await storage.claim(group, [1], 10, None, 10_000)
    publish = [(out, keyed("t", "ack:seed:0"))]

    async def cut(*args: Any) -> list[Receipt]:
        raise StoreUnavailable("the web node lost Cassandra")

    monkeypatch.setattr(storage._groups, "_settle_in", cut)
    with pytest.raises(StoreUnavailable):
        await storage.settle(group, "ack", [delivery.receipt], 0, publish)
    monkeypatch.undo()
    assert await bodies(storage, out) == ["t"]
    await asyncio.sleep(1.3)  # the lease of 1 s would have ended; the guard holds it
    assert await storage.claim(group, [1], 10, None, 10_000) == []
    settled = await storage.settle(group, "ack", [delivery.receipt], 0, publish)
    assert (settled.accepted, settled.lost) == ([delivery.receipt], [])
    assert await bodies(storage, out) == ["t"]
    assert [(p.key, p.partition) for p in settled.published] == [
        (m.key, m.partition) for m in await storage.read_range(out, 1, None, 10, False)
    ]
    assert (await storage.report(group)).counters.acknowledged == 1


# -- change marks (Storage.marks): how waiting readers hear of other stores' writes --


async def steady_mark(storage: Storage, queue: Queue) -> object:
    """The queue's mark, once two reads in a row agree (a mark may change spuriously)."""
    for _ in range(3):
        (first,), (second,) = await storage.marks([queue]), await storage.marks([queue])
        if first == second:
            return first.version
    raise AssertionError("the mark changes with nothing written")


async def test_marks_move_with_writes_through_any_store_sharing_the_data(
    storage: Storage, settings: Settings
) -> None:
    """Posts and overwrites by id through another process (SQLite) or web node (Cassandra)."""
    other = storage_for(settings)
    await other.start()
    try:
        queue = await new_queue(storage, partitions=3)
        quiet = await new_queue(storage, "quiet")
        before = await steady_mark(storage, queue)
        quiet_before = await steady_mark(storage, quiet)
        (key,) = await post(other, queue, [msg("a", partition=3)])
        after_post = await steady_mark(storage, queue)
        assert after_post != before
        (mark,) = await storage.marks([queue])
        assert mark.newest is not None and mark.newest.ts >= key.ts and not mark.gone
        # An overwrite of an old id (an hour ago, in another partition) moves it too.
        old = MessageKey(key.ts - 3600 * 10_000_000, key.tail)
        await other.put_messages(queue, [(2, old)], "b", "text/plain", 60)
        assert await steady_mark(storage, queue) != after_post
        # Other queues' marks stay where they were.
        assert await steady_mark(storage, quiet) == quiet_before
        marks = await storage.marks([quiet, queue, quiet])
        assert [m.gone for m in marks] == [False] * 3 and marks[0] == marks[2]
    finally:
        await other.close()


async def test_marks_say_when_a_queue_is_gone(storage: Storage, settings: Settings) -> None:
    other = storage_for(settings)
    await other.start()
    try:
        queue = await new_queue(storage)
        (mark,) = await storage.marks([queue])
        assert not mark.gone
        await other.delete_queue(queue)
        (mark,) = await storage.marks([queue])
        assert mark.gone
        # The name created again is another incarnation: the old copy stays gone.
        again = await new_queue(other)
        gone, fresh = await storage.marks([queue, again])
        assert gone.gone and not fresh.gone
    finally:
        await other.close()


async def test_messages_copied_into_a_queue_move_its_mark(storage: Storage) -> None:
    """Acknowledge-and-publish writes messages too (dead letters are posts on Cassandra)."""
    source = await new_queue(storage, "source")
    target = await new_queue(storage, "target")
    await post(storage, source, [msg("m")])
    groups = groups_of(storage)
    group, _ = await groups.create_group(source, "g", GroupSettings(), "earliest")
    (delivery,) = await groups.claim(group, [1], 1, None, 100)
    before = await steady_mark(storage, target)
    settled = await groups.settle(group, "ack", [delivery.receipt], 0, [(target, msg("out"))])
    assert settled.accepted == [delivery.receipt]
    assert await steady_mark(storage, target) != before
