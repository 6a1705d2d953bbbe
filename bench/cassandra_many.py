"""Many queues on Cassandra: fill, then time creating, finding and listing through HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.queues import bucket


def _fill(url: str, count: int) -> float:
    """Insert ``count`` queue rows with the backend's schema; seconds taken."""
    storage = CassandraStorage.from_url(url)
    asyncio.run(storage.start())
    asyncio.run(storage.close())
    cluster = Cluster(storage.hosts, port=storage.port, protocol_version=5)
    session = cluster.connect()
    ks = storage.keyspace
    insert = session.prepare(
        f"INSERT INTO {ks}.queues (app, bucket, name, qid, partitions, type, consistency,"
        " principles, created) VALUES (?, ?, ?, ?, 1, 'user', 'weak', [], ?)"
    )
    buckets = session.prepare(f"INSERT INTO {ks}.queue_buckets (app, bucket) VALUES (?, ?)")
    began = time.perf_counter()
    names = [f"q{i}" for i in range(1, count + 1)]
    for name in {bucket(n) for n in names}:
        session.execute(buckets, ("many", name))
    now = time.time()
    for start in range(0, count, 50_000):
        rows = [("many", bucket(n), n, uuid.uuid4(), now) for n in names[start : start + 50_000]]
        execute_concurrent_with_args(session, insert, rows, concurrency=200)
    seconds = time.perf_counter() - began
    cluster.shutdown()
    return seconds


async def _measure(url: str, count: int) -> list[str]:
    storage = CassandraStorage.from_url(url)
    await storage.start()
    try:
        began = time.perf_counter()
        for i in range(200):
            found = await storage.get_queue("many", f"q{1 + (i * 7919) % count}")
            assert found is not None
        find = (time.perf_counter() - began) / 200
        began = time.perf_counter()
        listed = 0
        start: str | None = None
        while listed < 20_000:
            page = await storage.list_queues("many", start, 1001)
            listed += min(len(page), 1000)
            if len(page) <= 1000:
                break
            start = page[1000].name
        listing = time.perf_counter() - began
        from queuey.storage.base import QueueSettings

        began = time.perf_counter()
        for i in range(100):
            await storage.create_queue("many", f"new{i}", QueueSettings())
        create = (time.perf_counter() - began) / 100
    finally:
        await storage.close()
    return [
        f"Cassandra with {count:,} queues in one application: find one by name "
        f"{find * 1000:.2f} ms, create one {create * 1000:.2f} ms (LWT), "
        f"list {listed:,} queues in pages of 1,000 in {listing:.2f} s.",
    ]


def many_queues(url: str, count: int) -> list[str]:
    seconds = _fill(url, count)
    lines = [f"Filled {count:,} queues into Cassandra directly in {seconds:.1f} s."]
    return lines + asyncio.run(_measure(url, count))
