"""What only the SQLite backend promises: group commit, the writer's job API, the file's key
clock, migrations, cheap queue deletion, its knobs."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from queuey.storage import keys as keys_module
from queuey.storage import open_storage
from queuey.storage import window as w
from queuey.storage.base import NewMessage, QueueSettings, StoreUnavailable
from queuey.storage.groups import Group, GroupSettings
from queuey.storage.keys import MessageKey
from queuey.storage.sqlite import SQLiteStorage
from queuey.storage.sqlite import groups as group_sql
from queuey.storage.sqlite.checkpoint import INTERVAL
from queuey.storage.sqlite.connections import connect
from queuey.storage.sqlite.schema import MIGRATIONS, migrate
from queuey.storage.sqlite.writer import Job, Txn, Writer


def msg(body: str, ttl: int = 3600) -> NewMessage:
    return NewMessage(body=body, content_type="text/plain", ttl=ttl, partition=1)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    storage = SQLiteStorage(tmp_path / "q.db", purge_interval=3600)
    await storage.start()
    yield storage
    await storage.close()


@pytest.fixture
async def two_stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStorage, SQLiteStorage]]:
    """Two stores on one file, as two processes would have."""
    one, two = SQLiteStorage(tmp_path / "q.db"), SQLiteStorage(tmp_path / "q.db")
    await one.start()
    await two.start()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


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
    with pytest.raises(StoreUnavailable, match="newer"):
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


# -- the writer, as future transactions (consumer groups) will use it -------------------


async def test_writer_jobs_share_a_transaction_and_fail_alone(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "w.db"), busy_timeout=1.0)
    migrate(conn)
    conn.execute("CREATE TABLE t (v TEXT NOT NULL)")
    writer = Writer(refusals=(LookupError,))
    writer.start(conn)

    def insert(value: str) -> Job[int]:
        return lambda c, txn: c.execute("INSERT INTO t VALUES (?)", (value,)).rowcount

    def refuse(c: sqlite3.Connection, txn: Txn) -> None:
        raise LookupError("refused before writing")

    def broken(c: sqlite3.Connection, txn: Txn) -> None:
        c.execute("INSERT INTO t VALUES ('half')")
        raise RuntimeError("a bug after a write")

    def stamp(c: sqlite3.Connection, txn: Txn) -> tuple[int, int]:
        return txn.take(3), txn.take(2)

    results = await asyncio.gather(
        writer.submit(insert("a"), durable=False),
        writer.submit(refuse, durable=False),
        writer.submit(broken, durable=False),
        writer.submit(stamp, durable=True),
        writer.submit(insert("b"), durable=False),
        return_exceptions=True,
    )
    assert [results[0], results[4]] == [1, 1]
    assert isinstance(results[1], LookupError)  # a refusal reaches its caller as raised
    assert isinstance(results[2], StoreUnavailable)  # anything else: StoreUnavailable
    assert isinstance(results[2].__cause__, RuntimeError)
    stamped = results[3]
    assert isinstance(stamped, tuple)
    first, second = stamped
    assert second >= first + 3  # each take is a consecutive run above the one before
    assert writer.synced_commits >= 1
    await writer.stop()
    with pytest.raises(StoreUnavailable):
        writer.submit(insert("c"), durable=False)
    with sqlite3.connect(tmp_path / "w.db") as check:
        assert sorted(r[0] for r in check.execute("SELECT v FROM t")) == ["a", "b"]  # no "half"
        assert check.execute("SELECT last_ts FROM clock").fetchone()[0] == second + 1


async def test_keys_stay_above_the_file_clock_when_the_wall_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (here another store on the file) starts its own clock at 0, and the
    wall clock goes back a day: keys still follow commit order, above the ``clock`` row."""
    first = SQLiteStorage(tmp_path / "q.db")
    await first.start()
    queue, _ = await first.create_queue("app", "q", QueueSettings())
    posted = await first.post_messages(queue, [msg("a")])
    real = keys_module.now_ticks
    monkeypatch.setattr(keys_module, "now_ticks", lambda: real() - 86400 * 10_000_000)
    second = SQLiteStorage(tmp_path / "q.db")
    await second.start()
    try:
        posted += await second.post_messages(queue, [msg("b")])
        posted += await first.post_messages(queue, [msg("c")])
        posted += await second.post_messages(queue, [msg("d"), msg("e")])
    finally:
        await first.close()
        await second.close()
    third = SQLiteStorage(tmp_path / "q.db")  # a restart, the clock still a day behind
    await third.start()
    try:
        posted += await third.post_messages(queue, [msg("f")])
        stored = await third.read_range(queue, 1, None, 10, False)
    finally:
        await third.close()
    assert posted == sorted(posted) and len(set(posted)) == 6
    assert [m.body for m in stored] == list("abcdef")


# -- the knobs ---------------------------------------------------------------------------


def test_open_storage_passes_the_sqlite_knobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    tuned = open_storage(url, readers=2, busy_timeout=0.5, purge_batch=7, purge_interval=9.0)
    assert isinstance(tuned, SQLiteStorage)
    assert (tuned.readers, tuned.busy_timeout, tuned.purge_batch, tuned.purge_interval) == (
        2,
        0.5,
        7,
        9.0,
    )
    default = open_storage(url, readers=None, busy_timeout=None, purge_batch=None)
    assert isinstance(default, SQLiteStorage)
    assert (default.readers, default.busy_timeout, default.purge_batch) == (4, 10.0, 1000)
    assert default.purge_interval == 30.0
    assert default.idempotency_window == 86400
    assert getattr(open_storage(url, idempotency_window=5), "idempotency_window", None) == 5
    with pytest.raises(ValueError):
        open_storage(url, idempotency_window=0)


async def test_a_locked_file_fails_writes_after_busy_timeout(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "q.db", busy_timeout=0.2)
    await store.start()
    try:
        queue, _ = await store.create_queue("app", "q", QueueSettings())
        blocker = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.post_messages(queue, [msg("waits")])
        assert 0.15 < time.monotonic() - began < 5
        blocker.execute("ROLLBACK")
        blocker.close()
        await store.post_messages(queue, [msg("goes")])
        assert [m.body for m in await store.read_range(queue, 1, None, 10, False)] == ["goes"]
    finally:
        await store.close()


async def test_purge_works_in_batches_of_purge_batch(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "q.db", purge_batch=10, purge_interval=3600)
    await store.start()
    try:
        queue, _ = await store.create_queue("app", "q", QueueSettings(consistency="weak"))
        await store.post_messages(queue, [msg(str(i), ttl=1) for i in range(25)])
        await asyncio.sleep(1.1)
        before = store.commits
        assert await store.purge() == 25
        # 10 + 10 + 5 expired rows, then one look each for expired idempotency keys and
        # for deleted queues: one transaction each.
        assert store.commits - before == 5
    finally:
        await store.close()


async def test_purge_reclaims_expired_keys_and_those_of_deleted_queues(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "q.db", purge_batch=2, idempotency_window=1)
    await store.start()

    def keys_of(conn: sqlite3.Connection) -> list[tuple[int, str]]:
        return conn.execute("SELECT qid, key FROM idempotency_keys ORDER BY key").fetchall()

    try:
        kept, _ = await store.create_queue("app", "kept", QueueSettings())
        gone, _ = await store.create_queue("app", "gone", QueueSettings())
        keyed = [
            NewMessage(f"m{i}", "text/plain", 3600, 1, idempotency_key=f"k{i}") for i in range(5)
        ]
        await store.post_messages(kept, keyed[:3])
        await asyncio.sleep(1.1)  # these keys expire; their messages do not
        await store.post_messages(kept, keyed[3:])
        await store.post_messages(gone, keyed)
        assert len(await store._readers.run(keys_of)) == 10
        await store.delete_queue(gone)  # its keys are unexpired; this wakes the purge too
        await store.purge()
        qid = int(kept.handle)
        assert await store._readers.run(keys_of) == [(qid, "k3"), (qid, "k4")]
        assert await store.count_messages(kept) == 5
    finally:
        await store.close()


# -- consumer groups: the writer's window cache and the frontier (sqlite/groups.py) ------


async def _group(store: SQLiteStorage, count: int) -> tuple[Group, list[MessageKey]]:
    queue, _ = await store.create_queue("app", "g", QueueSettings(consistency="weak"))
    group, _ = await store.create_group(queue, "g", GroupSettings(), "earliest")
    posted = await store.post_messages(queue, [msg(f"m{i}") for i in range(count)])
    return group, [p.key for p in posted]


async def test_a_rolled_back_claim_is_not_taken_from_the_window_cache(store: SQLiteStorage) -> None:
    """A claim whose transaction rolls back leaves its window changed in the writer's
    cache; the next claim must read the row (its nonce differs), not lease after it."""
    group, keys = await _group(store, 6)
    first = await store.claim(group, [1], 2, None, 10_000)
    assert [d.message.key for d in first] == keys[:2]

    def claim_then_fail(conn: sqlite3.Connection, txn: Txn) -> None:
        leased = group_sql.claim(conn, store._windows, txn, b"t" * 8, group, [1], 2, None, 10_000)
        assert [d.message.key for d in leased] == keys[2:4]
        raise RuntimeError("a bug after the claim wrote")

    with pytest.raises(StoreUnavailable):
        await store._writer.submit(claim_then_fail, durable=False)
    again = await store.claim(group, [1], 2, None, 10_000)
    assert [d.message.key for d in again] == keys[2:4]
    report = await store.report(group)
    assert report.counters.delivered == 4


async def _in_one_transaction(store: SQLiteStorage, *calls: Awaitable[Any]) -> list[Any]:
    """Run ``calls`` as jobs of one writer transaction, in this order.

    The writer is held by a job that waits while the calls submit theirs, one
    at a time; it then takes them all in its next transaction.
    """
    holding, gate = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection, txn: Txn) -> None:
        holding.set()
        gate.wait(10)

    writer = store._writer
    held = writer.submit(hold, durable=False)
    await asyncio.get_running_loop().run_in_executor(None, holding.wait, 10)
    tasks = []
    for call in calls:
        tasks.append(asyncio.ensure_future(call))
        for _ in range(5000):  # each call's job is queued before the next call starts
            await asyncio.sleep(0.001)
            if writer._jobs.qsize() == len(tasks):
                break
        assert writer._jobs.qsize() == len(tasks)
    commits = store.commits
    gate.set()
    await held
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert store.commits == commits + 2  # the held job's transaction, then all of these
    return results


async def test_jobs_of_one_transaction_share_the_window_and_write_it_once(
    two_stores: tuple[SQLiteStorage, SQLiteStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four claims in one transaction lease one after another from the changed window, and
    the window is written once, at the end: as another store on the file then reads it."""
    one, two = two_stores
    group, keys = await _group(one, 16)
    dumps = 0
    dump = w.dump

    def counted(window: w.Window) -> bytes:
        nonlocal dumps
        dumps += 1
        return dump(window)

    monkeypatch.setattr(w, "dump", counted)
    claims = [one.claim(group, [1], 3, None, 10_000) for _ in range(4)]
    found = await _in_one_transaction(one, *claims)
    assert [[d.message.key for d in f] for f in found] == [keys[i : i + 3] for i in (0, 3, 6, 9)]
    assert dumps == 1
    rest = await two.claim(group, [1], 10, None, 10_000)  # from the row, no cache
    assert [d.message.key for d in rest] == keys[12:]


async def test_a_group_deleted_after_a_claim_in_its_transaction_leaves_no_window(
    store: SQLiteStorage,
) -> None:
    group, keys = await _group(store, 4)
    found, deleted = await _in_one_transaction(
        store, store.claim(group, [1], 2, None, 10_000), store.delete_group(group)
    )
    assert [d.message.key for d in found] == keys[:2] and deleted is None
    with sqlite3.connect(store.path) as check:
        rows = check.execute(
            "SELECT count(*) FROM group_windows WHERE gid = ?", (int(group.handle),)
        )
        assert rows.fetchone()[0] == 0


async def test_a_put_behind_the_frontier_after_a_claim_in_its_transaction_is_claimed(
    store: SQLiteStorage,
) -> None:
    """The PUT notes where to scan again in the window's row after the claim changed the
    window in memory; the window's write at the end of the transaction applies the note."""
    group, keys = await _group(store, 4)
    behind = w.successor(keys[1])
    first, _ = await _in_one_transaction(
        store,
        store.claim(group, [1], 3, None, 10_000),
        store.put_messages(group.queue, [(1, behind)], "put", "text/plain", 60),
    )
    assert [d.message.key for d in first] == keys[:3]
    found = await store.claim(group, [1], 10, None, 10_000)
    assert [d.message.key for d in found] == [behind, keys[3]]


async def test_an_ack_and_publish_with_a_lost_receipt_changes_no_window_of_its_transaction(
    store: SQLiteStorage,
) -> None:
    """All or nothing, also when an earlier job of the transaction changed the window: the
    receipt that would be accepted stays leased."""
    group, keys = await _group(store, 3)
    leased = await store.claim(group, [1], 3, None, 10_000)
    first, second = leased[0].receipt, leased[1].receipt
    lost = w.Receipt(1, keys[2], 0, 999)  # not the token of its lease
    target, _ = await store.create_queue("app", "out", QueueSettings())
    acked, refused = await _in_one_transaction(
        store,
        store.settle(group, "ack", [first], 0),
        store.settle(group, "ack", [second, lost], 0, [(target, msg("out"))]),
    )
    assert acked.accepted == [first]
    assert (refused.accepted, refused.lost, refused.published) == ([], [lost], ())
    report = await store.report(group)
    assert (report.counters.acknowledged, report.partitions[0].in_flight) == (1, 2)
    assert await store.count_messages(target) == 0


async def test_a_window_changed_by_another_process_is_read_from_the_file(
    two_stores: tuple[SQLiteStorage, SQLiteStorage],
) -> None:
    """Two stores on one file (two processes): each one's cached window is stale once the
    other writes; claims and acks alternate and every message is leased once."""
    one, two = two_stores
    group, keys = await _group(one, 12)
    leased: list[MessageKey] = []
    for turn in range(6):
        store = (one, two)[turn % 2]
        found = await store.claim(group, [1], 2, None, 10_000)
        leased += [d.message.key for d in found]
        if turn % 3 == 0:  # the other store acknowledges, changing the window under it
            other = (two, one)[turn % 2]
            settled = await other.settle(group, "ack", [d.receipt for d in found], 0)
            assert settled.lost == []
    assert leased == keys
    report = await two.report(group)
    assert (report.counters.delivered, report.counters.acknowledged) == (12, 4)
    assert report.partitions[0].in_flight == 8


async def test_a_put_behind_the_frontier_through_another_process_is_claimed(
    two_stores: tuple[SQLiteStorage, SQLiteStorage],
) -> None:
    """PUT by id through another store creates a message behind the leases in flight;
    the next claim, from a cached window, still finds it (oldest first)."""
    one, two = two_stores
    group, keys = await _group(one, 4)
    first = await one.claim(group, [1], 3, None, 10_000)
    assert [d.message.key for d in first] == keys[:3]
    behind = w.successor(keys[1])  # between keys 1 and 2 (their ticks are consecutive)
    assert keys[1] < behind < keys[2]
    await two.put_messages(group.queue, [(1, behind)], "put", "text/plain", 60)
    found = await one.claim(group, [1], 10, None, 10_000)
    assert [d.message.key for d in found] == [behind, keys[3]]
    assert [d.message.body for d in found] == ["put", "m3"]


async def test_windows_of_schema_4_are_kept_by_migration_5(tmp_path: Path) -> None:
    """A file whose windows were written before the frontier (schema 4, remembered
    receipts as a list of arrays) keeps its groups' places, leases and remembered
    receipts: the migration copies the rows, the old windows decode."""
    store = SQLiteStorage(tmp_path / "q.db")
    await store.start()
    group, keys = await _group(store, 5)
    leased = await store.claim(group, [1], 2, None, 10_000)
    await store.settle(group, "ack", [leased[0].receipt], 0)
    (third,) = await store.claim(group, [1], 1, None, 10_000)  # moves the start past keys[0]
    await store.close()
    with sqlite3.connect(tmp_path / "q.db") as conn:  # back to schema 4, old-shaped windows
        (blob,) = conn.execute("SELECT window FROM group_windows").fetchone()
        old = w.load(blob)
        assert [e[:3] for e in w.remembered(old)] == [(*keys[0], leased[0].receipt.token)]
        shape = msgspec.to_builtins(old, builtin_types=(bytes,))[:-2]  # no frontier fields
        shape[5] = [list(e) for e in w.remembered(old)]  # receipts as a list of arrays
        conn.executescript(
            "DROP TABLE group_windows; CREATE TABLE group_windows (gid INTEGER NOT NULL,"
            " partition INTEGER NOT NULL, window BLOB NOT NULL, PRIMARY KEY (gid, partition))"
            " WITHOUT ROWID; DELETE FROM schema_version WHERE version = 5;"
        )
        conn.execute(
            "INSERT INTO group_windows VALUES (?, 1, ?)",
            (int(group.handle), msgspec.msgpack.encode(shape)),
        )
    reopened = SQLiteStorage(tmp_path / "q.db")
    await reopened.start()
    try:
        again = await reopened.get_group(group.queue, "g")
        assert again is not None
        retried = await reopened.settle(again, "ack", [leased[0].receipt], 0)
        assert (retried.accepted, retried.lost) == ([leased[0].receipt], [])  # remembered
        found = await reopened.claim(again, [1], 10, None, 10_000)
        assert [d.message.key for d in found] == keys[3:]  # keys[1] and keys[2] still leased
        settled = await reopened.settle(again, "ack", [leased[1].receipt, third.receipt], 0)
        assert settled.lost == []
        report = await reopened.report(again)
        assert (report.counters.delivered, report.counters.acknowledged) == (5, 3)
    finally:
        await reopened.close()


async def test_checkpoints_copy_the_log_into_the_file_off_the_writer(tmp_path: Path) -> None:
    """A thread of its own copies the log into the database file every INTERVAL, before
    the writer's COMMIT would (past a quarter of the reserve, 512 pages here: these
    writes are some 70), so the file itself (read ignoring the log) soon holds them."""
    store = SQLiteStorage(tmp_path / "q.db")
    await store.start()
    try:
        pages = await store._writer.submit(
            lambda conn, txn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
            durable=False,
        )
        assert pages == 512
        queue, _ = await store.create_queue("app", "q", QueueSettings(consistency="weak"))
        for _ in range(5):
            await store.post_messages(queue, [msg("x" * 500) for _ in range(100)])
        deadline = time.monotonic() + 10
        while True:
            # immutable=1: the database file alone, as if the log were not there.
            uri = f"file:{tmp_path / 'q.db'}?mode=ro&immutable=1"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as file_only:
                try:
                    (count,) = file_only.execute("SELECT count(*) FROM messages").fetchone()
                except sqlite3.OperationalError:  # the table itself is still only in the log
                    count = 0
            if count == 500:
                break
            assert time.monotonic() < deadline, f"the file holds {count} of 500 messages"
            await asyncio.sleep(INTERVAL)
        assert store._checkpointer is not None and store._checkpointer.runs > 0
    finally:
        await store.close()
