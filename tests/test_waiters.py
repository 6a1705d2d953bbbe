"""core.waiters: a waiter is a future, woken by a notify on its queue or by its timeout."""

from __future__ import annotations

import asyncio

from queuey.core.waiters import Waiters


async def test_notify_wakes_only_the_waiters_of_that_queue() -> None:
    waiters = Waiters()
    woken: list[str] = []

    async def wait(handle: str) -> None:
        await waiters.wait(handle, 30)
        woken.append(handle)

    tasks = [asyncio.create_task(wait(h)) for h in ("a", "a", "b")]
    await asyncio.sleep(0)
    assert waiters.count == 3
    waiters.notify("a")
    await asyncio.wait_for(asyncio.gather(tasks[0], tasks[1]), 5)
    assert woken == ["a", "a"] and not tasks[2].done()
    waiters.notify("b")
    await asyncio.wait_for(tasks[2], 5)
    assert waiters.count == 0


async def test_timeout_returns_and_leaves_nothing_behind() -> None:
    waiters = Waiters()
    await waiters.wait("a", 0.01)
    assert waiters.count == 0
    waiters.notify("a")  # nobody waits: nothing to do
