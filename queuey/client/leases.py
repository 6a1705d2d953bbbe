"""Keeping leases alive while a handler works: a thread for ``Client``, a task for ``AsyncClient``.

Whatever ``consume`` has claimed and not yet settled is *held*; about every
``lease_seconds / 2`` the keeper extends all held leases by ``lease_seconds``,
so a slow handler keeps its message and the ones waiting behind it. Receipts
the server reports lost are remembered: ``consume`` does not hand those to the
handler (another consumer may have them now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from queuey.client.errors import LeaseLost, QueueyError
from queuey.client.models import Delivery

log = logging.getLogger("queuey.client")


class _Held:
    """The leases held and when they are next due, shared by both keepers."""

    def __init__(self) -> None:
        self.leases: dict[str, Delivery] = {}
        self.lost: set[str] = set()
        self.due = 0.0

    def hold(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            self.leases[delivery.receipt] = delivery
        if batch:
            self.due = time.monotonic() + batch[0].lease_seconds / 2

    def take(self) -> tuple[list[Delivery], int]:
        """The leases to extend now, and by how long; schedules the next time."""
        leases = list(self.leases.values())
        seconds = max([1, *(d.lease_seconds for d in leases)])
        self.due = time.monotonic() + seconds / 2
        return leases, seconds

    def settle(self, lost: list[str]) -> None:
        for receipt in lost:
            if receipt in self.leases:
                self.lost.add(receipt)


def _lost(exc: QueueyError, leases: list[Delivery]) -> list[str]:
    if isinstance(exc, LeaseLost):
        return exc.lost
    log.warning("could not extend %d lease(s): %s", len(leases), exc)
    return []


class LeaseKeeper:
    """The keeper of the blocking client: one daemon thread per ``consume``."""

    def __init__(self, extend: Callable[[list[Delivery], int], object]) -> None:
        self._extend = extend
        self._held = _Held()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="queuey-leases", daemon=True)
        self._thread.start()

    def hold(self, batch: list[Delivery]) -> None:
        with self._cond:
            self._held.hold(batch)
            self._cond.notify()

    def drop(self, delivery: Delivery) -> None:
        with self._cond:
            self._held.leases.pop(delivery.receipt, None)

    def held(self) -> list[Delivery]:
        with self._cond:
            return list(self._held.leases.values())

    def is_lost(self, delivery: Delivery) -> bool:
        with self._cond:
            return delivery.receipt in self._held.lost

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (
                    not self._held.leases or self._held.due > time.monotonic()
                ):
                    timeout = self._held.due - time.monotonic() if self._held.leases else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                leases, seconds = self._held.take()
            try:
                self._extend(leases, seconds)
                lost: list[str] = []
            except QueueyError as exc:
                lost = _lost(exc, leases)
            with self._cond:
                self._held.settle(lost)


class AsyncLeaseKeeper:
    """The keeper of the asyncio client: one task per ``consume``."""

    def __init__(self, extend: Callable[[list[Delivery], int], Awaitable[object]]) -> None:
        self._extend = extend
        self._held = _Held()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="queuey-leases")

    def hold(self, batch: list[Delivery]) -> None:
        self._held.hold(batch)
        self._changed.set()

    def drop(self, delivery: Delivery) -> None:
        self._held.leases.pop(delivery.receipt, None)

    def held(self) -> list[Delivery]:
        return list(self._held.leases.values())

    def is_lost(self, delivery: Delivery) -> bool:
        return delivery.receipt in self._held.lost

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            if not self._held.leases:
                await self._changed.wait()
                continue
            remaining = self._held.due - time.monotonic()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
                continue
            leases, seconds = self._held.take()
            try:
                await self._extend(leases, seconds)
                lost: list[str] = []
            except QueueyError as exc:
                lost = _lost(exc, leases)
            self._held.settle(lost)
