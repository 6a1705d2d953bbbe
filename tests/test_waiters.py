"""core.waiters: watches are futures, woken by a notify, by the one shared poll, or a timeout."""

from __future__ import annotations

import asyncio
import time

from queuey.config import Settings
from queuey.core.waiters import POLL_SECONDS, Waiters
from queuey.storage.base import NewMessage, Queue, QueueSettings, Storage
from queuey.storage.keys import MessageKey


def a_queue(handle: str) -> Queue:
    return Queue("app", handle, QueueSettings(), 0.0, handle)


async def test_notify_wakes_only_the_watches_of_that_queue() -> None:
    waiters = Waiters()
    woken: list[str] = []

    async def wait(handle: str) -> None:
        async with waiters.watch(a_queue(handle)) as watch:
            assert await watch.wait(30)
        woken.append(handle)

    tasks = [asyncio.create_task(wait(h)) for h in ("a", "a", "b")]
    await asyncio.sleep(0)
    assert waiters.count() == 3
    waiters.notify("a")
    await asyncio.wait_for(asyncio.gather(tasks[0], tasks[1]), 5)
    assert woken == ["a", "a"] and not tasks[2].done()
    waiters.notify("b")
    await asyncio.wait_for(tasks[2], 5)
    assert waiters.count() == 0 and waiters.queues == 0


async def test_timeout_returns_and_leaves_nothing_behind() -> None:
    waiters = Waiters()
    async with waiters.watch(a_queue("a")) as watch:
        assert not await watch.wait(0.01)
    assert waiters.count() == 0
    waiters.notify("a")  # nobody waits: nothing to do


async def test_news_while_not_waiting_is_kept_for_the_next_wait() -> None:
    """A write between a look at storage and the next wait is never missed."""
    waiters = Waiters()
    async with waiters.watch(a_queue("a")) as watch:
        waiters.notify("a")
        assert await watch.wait(30)  # at once
        assert not await watch.wait(0.01)  # the news was taken


async def test_gone_and_close_wake_for_good() -> None:
    waiters = Waiters()
    async with waiters.watch(a_queue("a")) as watch:
        waiters.gone("a")
        assert watch.gone and await watch.wait(30) and await watch.wait(30)
    async with waiters.watch(a_queue("b"), "stream") as watch:
        assert waiters.count("stream") == 1 and waiters.count("read") == 0
        waiters.close()
        assert watch.closed and await watch.wait(30)


async def test_reads_between_wake_ups_are_shared() -> None:
    waiters = Waiters()
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    async with waiters.watch(a_queue("a")) as one, waiters.watch(a_queue("a")) as two:
        first = await asyncio.gather(one.shared("k", fetch), two.shared("k", fetch))
        assert list(first) == [1, 1] and calls == 1
        waiters.notify("a")  # news: what was read before is forgotten
        assert await one.shared("k", fetch) == 2


class CountingStore:
    """A real store whose ``marks`` calls are counted (the shared poll's probes)."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def marks(self, queues: list[Queue]) -> object:
        self.calls.append(len(queues))
        return await self.store.marks(queues)


async def test_one_shared_poll_per_queue_hears_other_stores(
    storage: Storage, settings: Settings
) -> None:
    """Hundreds of watches of two queues: one probe per queue per round, woken by a post
    through another store on the same data (another process, another web node)."""
    from queuey.api.app import storage_for

    counting = CountingStore(storage)
    waiters = Waiters(counting)  # type: ignore[arg-type]
    first, _ = await storage.create_queue("app", "first", QueueSettings())
    second, _ = await storage.create_queue("app", "second", QueueSettings())
    other = storage_for(settings)
    await other.start()
    try:

        async def held(queue: Queue) -> bool:
            async with waiters.watch(queue) as watch:
                return await watch.wait(30)

        tasks = [asyncio.create_task(held(q)) for q in (first, second) for _ in range(200)]
        while waiters.count() < 400:
            await asyncio.sleep(0.01)
        before, began = waiters.polls, time.monotonic()
        await asyncio.sleep(10 * POLL_SECONDS)
        probes, elapsed = waiters.polls - before, time.monotonic() - began
        # At most one probe per queue per round, whatever the number of watches: the two
        # queues' marks in one call each round (or in two while their schedules differ).
        assert 0 < probes <= 2 * (elapsed / POLL_SECONDS + 2)
        assert max(counting.calls) <= 2
        await other.post_messages(first, [NewMessage("m", "text/plain", 60, 1)])
        woken = tasks[:200]
        assert all(await asyncio.wait_for(asyncio.gather(*woken), 5))  # within 1 s and more
        assert not any(t.done() for t in tasks[200:])
        waiters.close()
        await asyncio.gather(*tasks)
    finally:
        await other.close()


async def test_a_write_through_this_process_wakes_when_settled() -> None:
    """Where a settle delay hides new messages, a notify wakes again once it has passed."""

    class Settling:
        def settle_seconds(self, consistency: str) -> float:
            return 0.3

        async def marks(self, queues: list[Queue]) -> list[object]:
            from queuey.storage.base import QueueMark

            return [QueueMark(1) for _ in queues]

    waiters = Waiters(Settling())  # type: ignore[arg-type]
    async with waiters.watch(a_queue("a")) as watch:
        from queuey.storage.keys import now_ticks

        waiters.notify("a", MessageKey(now_ticks(), b"\0" * 8))
        assert await watch.wait(5)  # now
        assert await watch.wait(5)  # and once settled
        waiters.close()
