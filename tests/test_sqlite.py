"""What only the SQLite backend promises: group commit, migrations, cheap queue deletion."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queuey.storage.base import NewMessage, QueueSettings, StorageUnavailable
from queuey.storage.sqlite import SQLiteStorage
from queuey.storage.sqlite.schema import MIGRATIONS


def msg(body: str) -> NewMessage:
    return NewMessage(body=body, content_type="text/plain", ttl=3600, partition=1)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    storage = SQLiteStorage(tmp_path / "q.db", purge_interval=3600)
    await storage.start()
    yield storage
    await storage.close()


@pytest.mark.parametrize("consistency", ["weak", "strong"])
async def test_group_commit_serves_many_writes_per_transaction(
    store: SQLiteStorage, consistency: str
) -> None:
    queue, _ = await store.create_queue("app", "q", QueueSettings(consistency=consistency))
    before, synced_before = store.commits, store.synced_commits
    await asyncio.gather(*(store.post_messages(queue, [msg(str(i))]) for i in range(300)))
    commits = store.commits - before
    assert 1 <= commits < 300
    synced = store.synced_commits - synced_before
    # strong writes are fsynced (synchronous=FULL) before they return; weak ones are not.
    assert synced == (commits if consistency == "strong" else 0)


async def test_one_failing_write_does_not_undo_its_neighbours(store: SQLiteStorage) -> None:
    queue, _ = await store.create_queue("app", "q", QueueSettings())
    gone, _ = await store.create_queue("app", "gone", QueueSettings())
    await store.delete_queue(gone)
    results = await asyncio.gather(
        store.post_messages(queue, [msg("a")]),
        store.post_messages(gone, [msg("b")]),
        store.post_messages(queue, [msg("c")]),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    stored = await store.read_range(queue, 1, None, 10, False)
    assert [m.body for m in stored] == ["a", "c"]


async def test_data_and_schema_survive_a_restart(tmp_path: Path) -> None:
    first = SQLiteStorage(tmp_path / "q.db")
    await first.start()
    queue, _ = await first.create_queue("app", "q", QueueSettings())
    await first.post_messages(queue, [msg("kept")])
    await first.close()
    second = SQLiteStorage(tmp_path / "q.db")
    await second.start()
    try:
        reopened = await second.get_queue("app", "q")
        assert reopened is not None
        assert [m.body for m in await second.read_range(reopened, 1, None, 10, False)] == ["kept"]
    finally:
        await second.close()
    with sqlite3.connect(tmp_path / "q.db") as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(
            MIGRATIONS
        )


async def test_a_newer_schema_refuses_to_start(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "q.db")
    await storage.start()
    await storage.close()
    with sqlite3.connect(tmp_path / "q.db") as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (999)")
    with pytest.raises(StorageUnavailable, match="newer"):
        await SQLiteStorage(tmp_path / "q.db").start()


async def test_deleting_a_big_queue_does_not_stall_other_writes(store: SQLiteStorage) -> None:
    big, _ = await store.create_queue("app", "big", QueueSettings(consistency="weak"))
    other, _ = await store.create_queue("app", "other", QueueSettings())
    for start in range(0, 100_000, 1000):
        await store.post_messages(big, [msg(str(i)) for i in range(start, start + 1000)])
    await store.delete_queue(big)  # returns at once: the messages are still on disk
    with sqlite3.connect(store.path) as conn:
        left = conn.execute("SELECT count(*) FROM messages WHERE qid = ?", (int(big.handle),))
        assert left.fetchone()[0] == 100_000
    purge = asyncio.create_task(store.purge())
    await asyncio.sleep(0)  # let the purge queue its first batch
    await store.post_messages(other, [msg("not stalled")])
    assert not purge.done()  # the write was served between purge batches
    # The background purge, woken by the delete, may share the work with this one.
    assert 0 < await purge <= 100_000
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM dead_queues").fetchone()[0] == 0
