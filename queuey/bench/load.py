"""The load of ``queuey bench``: posting, reading, or consuming, over many connections.

Every request goes through :class:`queuey.client.AsyncClient` and is counted in
:class:`~queuey.bench.results.Results` by :func:`measured`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx

from queuey.bench.options import MAX_BATCH, Options
from queuey.bench.progress import Progress
from queuey.bench.results import Results
from queuey.client import AsyncClient, AsyncQueue, ConnectionFailed, Delivery, QueueyError

T = TypeVar("T")

TIMEOUT = 30.0


def message_body(index: int, size: int) -> str:
    """Message ``index`` of a run: its number, padded with ``x`` to ``size`` bytes."""
    return f"{index}:".ljust(size, "x")[:size]


def _chunks(total: int, batch: int) -> Iterator[tuple[int, int]]:
    """(first message index, count) of each request."""
    for first in range(0, total, batch):
        yield first, min(batch, total - first)


def connect(options: Options) -> AsyncClient:
    """A client with one keep-alive connection to the server, sending the application key.

    Every worker has its own: one pool shared by many tasks costs httpx more
    than the requests themselves once tens of them wait on it (encode/httpx#3215).
    Retries are off: a load tester counts failures rather than hiding them.
    """
    return AsyncClient(
        options.url,
        app=options.app,
        key=options.key,
        timeout=TIMEOUT,
        retry=None,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


async def measured(results: Results, request: Awaitable[T]) -> T | None:
    """Await one request, counting it; its result, or None when it failed."""
    began = time.perf_counter()
    try:
        result = await request
    except ConnectionFailed as exc:
        results.failed(exc.cause if isinstance(exc.cause, Exception) else exc)
        return None
    except QueueyError as exc:
        results.answered(began, exc.status or 0, False)
        return None
    results.answered(began, 200, True)
    return result


async def post_all(options: Options, results: Results, progress: Progress) -> None:
    """Post the messages, ``options.concurrency`` requests in flight."""
    work = _chunks(options.messages or 0, options.batch)

    async def worker(queue: AsyncQueue) -> None:
        # One iterator shared by every worker: each takes the next request when it is free.
        for first, count in work:
            if options.batch == 1:
                posting: Awaitable[object] = queue.post(message_body(first, options.size))
            else:
                items = [
                    {"body": message_body(i, options.size)} for i in range(first, first + count)
                ]
                posting = queue.post_many(items)
            ok = await measured(results, posting) is not None
            results.messages += count if ok else 0
            progress.advance(count if ok else 0, 0 if ok else 1)

    await _each_with_a_client(options, worker)


async def read_all(
    options: Options,
    partitions: int,
    results: Results,
    progress: Progress,
) -> None:
    """Each reader pages every partition with ``since`` until it is exhausted."""

    async def reader(queue: AsyncQueue) -> None:
        seen: set[str] = set()
        budget = options.messages
        for partition in range(1, partitions + 1):
            since: str | None = None
            while budget is None or budget > 0:
                # since is inclusive: after the first page, ask for one more to make up for it.
                limit = min(options.batch + (since is not None), MAX_BATCH)
                page = await measured(
                    results, queue.read(since=since, limit=limit, partitions=[partition])
                )
                if page is None:
                    progress.advance(0, 1)
                    return
                fresh = page[1:] if page and page[0].message_id == since else page
                if budget is not None:
                    fresh = fresh[:budget]
                    budget -= len(fresh)
                for message in fresh:
                    if message.message_id in seen:
                        results.duplicates += 1
                    seen.add(message.message_id)
                results.messages += len(fresh)
                progress.advance(len(fresh))
                if len(page) < limit or not fresh:
                    break  # the end of this partition
                since = page[-1].message_id

    await _each_with_a_client(options, reader)


async def consume_all(options: Options, results: Results, progress: Progress) -> None:
    """Consumers claim and acknowledge until the group is drained (or the budget is spent)."""
    group = options.group or ""
    budget = options.messages
    seen: set[str] = set()

    async def consumer(queue: AsyncQueue) -> None:
        nonlocal budget
        handle = queue.group(group)
        while budget is None or budget > 0:
            # Single-threaded: take a share of the budget before waiting, give back the rest.
            take = options.batch if budget is None else min(options.batch, budget)
            if budget is not None:
                budget -= take
            batch: list[Delivery] | None = await measured(results, handle.claim(limit=take))
            if budget is not None:
                budget += take - len(batch or [])
            if not batch:
                progress.advance(0, 0 if batch is not None else 1)
                return
            acknowledged = await measured(results, handle.ack(batch)) is not None
            for delivery in batch:
                if delivery.message_id in seen:
                    results.duplicates += 1
                seen.add(delivery.message_id)
            done = len(batch) if acknowledged else 0
            results.messages += done
            progress.advance(done, 0 if acknowledged else 1)

    await _each_with_a_client(options, consumer)


async def _each_with_a_client(
    options: Options, work: Callable[[AsyncQueue], Awaitable[None]]
) -> None:
    """Run ``options.concurrency`` copies of ``work`` at once, each with its own connection."""

    async def one() -> None:
        async with connect(options) as client:
            await work(client.queue(options.queue))

    await asyncio.gather(*(one() for _ in range(options.concurrency)))
