"""The loop of :meth:`AsyncGroup.consume <queuey.client.AsyncGroup.consume>`.

As the blocking client's (``queuey.client.sync.consume``), with an
:class:`~queuey.client.leases.AsyncLeaseKeeper` task keeping leases alive and
a handler that may be a coroutine function. Cancelled, it gives back what it
holds and lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from queuey.client import calls
from queuey.client.errors import TRANSIENT, LeaseLost
from queuey.client.leases import AsyncLeaseKeeper
from queuey.client.models import Delivery, Tally

if TYPE_CHECKING:
    from queuey.client.aio.group import AsyncGroup

log = logging.getLogger("queuey.client")

#: A handler of ``AsyncGroup.consume``: a coroutine function (or a plain function).
AsyncHandler = Callable[[Delivery], object]


class AsyncConsumer:
    """One ``consume`` of a group: its handler, its leases and its tally."""

    def __init__(self, group: AsyncGroup, handler: AsyncHandler, delay: int | None) -> None:
        self.group = group
        self.handler = handler
        self.delay = delay
        self.tally = Tally()

    async def run(
        self,
        limit: int,
        wait: float,
        stop: asyncio.Event | None,
        partitions: Iterable[int] | None,
        consumer: str | None,
    ) -> Tally:
        """Claim and handle until ``stop`` is set or cancelled; what it did."""
        group = self.group
        stopped = stop or asyncio.Event()
        keeper = AsyncLeaseKeeper(group.extend)
        try:
            while not stopped.is_set():
                call = calls.claim(*group._at, limit, wait, partitions, consumer)
                batch = await group._client.patiently(call, stopped) or []
                keeper.hold(batch)
                for delivery in batch:
                    if stopped.is_set():
                        break
                    await self._handle(delivery, keeper)
                await self._release(keeper)
        except asyncio.CancelledError:
            await self._release(keeper)
            raise
        finally:
            await keeper.close()
        return self.tally

    async def _handle(self, delivery: Delivery, keeper: AsyncLeaseKeeper) -> None:
        tally = self.tally
        if keeper.is_lost(delivery):
            keeper.drop(delivery)
            tally.lost += 1
            return
        try:
            outcome = self.handler(delivery)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            keeper.drop(delivery)
            tally.failed += 1
            log.exception("handler failed on %s; releasing it", delivery.ref)
            tally.released += await self._settle(self.group.release([delivery], self.delay), 1)
            return
        keeper.drop(delivery)
        tally.handled += 1
        tally.acknowledged += await self._settle(self.group.ack([delivery]), 1)

    async def _release(self, keeper: AsyncLeaseKeeper) -> None:
        """Give back what was claimed and not handled (on stop)."""
        held = keeper.held()
        for delivery in held:
            keeper.drop(delivery)
        if held:
            self.tally.released += await self._settle(self.group.release(held), len(held))

    async def _settle(self, action: Awaitable[object], count: int) -> int:
        """Await an ack or release of ``count`` messages; how many counted (the rest: lost)."""
        try:
            await action
        except LeaseLost as exc:
            self.tally.lost += len(exc.lost)
            return count - len(exc.lost)
        except TRANSIENT as exc:
            log.warning("could not settle %d message(s): %s", count, exc)
            self.tally.lost += count
            return 0
        return count
