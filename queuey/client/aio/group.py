"""The asyncio :class:`AsyncGroup`: a consumer group's settings, claims and leases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from queuey.client import calls
from queuey.client.aio.consume import AsyncConsumer, AsyncHandler
from queuey.client.calls import Receipt, Since
from queuey.client.models import Delivery, Sent, Tally

if TYPE_CHECKING:
    from queuey.client.aio.queue import AsyncQueue


class AsyncGroup:
    """A consumer group; see :class:`~queuey.client.Group` for what each method does."""

    def __init__(self, queue: AsyncQueue, name: str) -> None:
        self.queue = queue
        self.name = name
        self._client = queue.client
        self._at = (queue.client._core.paths, queue.name, name)

    def __repr__(self) -> str:
        return f"<AsyncGroup {self._client.app}/{self.queue.name}/{self.name}>"

    async def create(
        self,
        guarantee: str | None = None,
        lease_seconds: int | None = None,
        max_deliveries: int | None = None,
        dead_letter_queue: str | None = None,
        ordered: bool | None = None,
        start: Since | None = None,
    ) -> dict[str, Any]:
        fields = calls.group_fields(
            guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered, start
        )
        return await self._client.call(calls.put_group(*self._at, fields))

    async def update(
        self,
        guarantee: str | None = None,
        lease_seconds: int | None = None,
        max_deliveries: int | None = None,
        dead_letter_queue: str | None = None,
        ordered: bool | None = None,
    ) -> dict[str, Any]:
        return await self.create(
            guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered
        )

    async def state(self) -> dict[str, Any]:
        return await self._client.call(calls.get_group(*self._at))

    async def delete(self) -> None:
        await self._client.call(calls.delete_group(*self._at))

    async def claim(
        self,
        limit: int | None = None,
        wait: float | None = None,
        partitions: Iterable[int] | None = None,
        consumer: str | None = None,
    ) -> list[Delivery]:
        return await self._client.call(calls.claim(*self._at, limit, wait, partitions, consumer))

    async def ack(self, leases: Iterable[Receipt]) -> list[str]:
        return await self._client.call(calls.ack(*self._at, leases))

    async def ack_and_publish(
        self, leases: Iterable[Receipt], messages: Sequence[Mapping[str, Any]]
    ) -> list[Sent]:
        return await self._client.call(calls.ack_and_publish(*self._at, leases, messages))

    async def release(self, leases: Iterable[Receipt], delay: int | None = None) -> list[str]:
        return await self._client.call(calls.release(*self._at, leases, delay))

    async def extend(self, leases: Iterable[Receipt], seconds: int | None = None) -> list[str]:
        return await self._client.call(calls.extend(*self._at, leases, seconds))

    async def seek(self, to: Since, partitions: Iterable[int] | None = None) -> dict[str, Any]:
        return await self._client.call(calls.seek(*self._at, to, partitions))

    async def consume(
        self,
        handler: AsyncHandler,
        limit: int = 10,
        wait: float = 20.0,
        stop: asyncio.Event | None = None,
        delay: int | None = None,
        partitions: Iterable[int] | None = None,
        consumer: str | None = None,
    ) -> Tally:
        """As :meth:`Group.consume`; leases are extended by a task while ``handler`` is awaited.

        Cancelling it (as Ctrl-C does under ``asyncio.run``) releases the
        messages claimed but not handled, then lets the cancellation through.
        """
        return await AsyncConsumer(self, handler, delay).run(
            limit, wait, stop, partitions, consumer
        )
