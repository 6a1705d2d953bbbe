"""The asyncio :class:`AsyncQueue`: a queue's settings, its messages, its consumer groups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from queuey.client import calls
from queuey.client.aio.group import AsyncGroup
from queuey.client.aio.waiting import sleep
from queuey.client.calls import Call, Ref, Since
from queuey.client.errors import AccessDenied, InvalidQueueName
from queuey.client.models import Message, Sent, Token
from queuey.client.paging import Pager
from queuey.client.streaming import Resume

if TYPE_CHECKING:
    from queuey.client.aio.client import AsyncClient

T = TypeVar("T")


class AsyncQueue:
    """One queue; see :class:`~queuey.client.Queue` for what each method does."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name
        self._paths = client._core.paths

    def __repr__(self) -> str:
        return f"<AsyncQueue {self.client.app}/{self.name}>"

    async def create(
        self,
        partitions: int | None = None,
        type: str | None = None,
        consistency: str | None = None,
        principles: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        fields = calls.queue_fields(partitions, type, consistency, principles)
        return await self.client.call(calls.create_queue(self._paths, self.name, fields))

    async def update(
        self,
        partitions: int | None = None,
        type: str | None = None,
        consistency: str | None = None,
        principles: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        fields = calls.queue_fields(partitions, type, consistency, principles)
        return await self.client.call(calls.update_queue(self._paths, self.name, fields))

    async def settings(self, count: bool = False) -> dict[str, Any]:
        return await self.client.call(calls.queue_settings(self._paths, self.name, count))

    async def delete(self) -> None:
        await self.client.call(calls.delete_queue(self._paths, self.name))

    async def post(
        self,
        body: str | bytes,
        ttl: int | None = None,
        partition: int | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> Sent:
        keyed = self.client._core.idempotent_posts
        call = calls.post(
            self._paths, self.name, body, ttl, partition, content_type, idempotency_key, keyed
        )
        return await self.client.call(call)

    async def post_many(self, messages: Sequence[Mapping[str, Any]]) -> list[Sent]:
        keyed = self.client._core.idempotent_posts
        return await self.client.call(calls.post_many(self._paths, self.name, messages, keyed))

    async def read(
        self,
        since: Since | None = None,
        limit: int | None = None,
        order: str | None = None,
        partitions: Iterable[int] | None = None,
        wait: float | None = None,
    ) -> list[Message]:
        call = calls.read(self._paths, self.name, since, limit, order, partitions, wait)
        return await self.client.call(call)

    async def iter(
        self,
        since: Since | None = None,
        partitions: Iterable[int] | None = None,
        follow: bool = False,
        page_size: int = 100,
        wait: float = 20.0,
        poll: float = 0.5,
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[Message]:
        chosen = await self._partitions(partitions)
        pager = Pager(self._paths, self.name, chosen, since, page_size, wait, poll)
        waited: float | None = None
        while True:
            fresh = 0
            while behind := pager.behind():
                for cursor in behind:
                    page = await self._fetch(pager.page(cursor), follow, stop)
                    if page is None:
                        return
                    for message in pager.took(cursor, page):
                        fresh += 1
                        yield message
            if not follow or (stop is not None and stop.is_set()):
                return
            pause = pager.pause(fresh, waited)
            if pause and await sleep(pause, stop):
                return
            started = time.monotonic()
            if await self._fetch(pager.wake_up(), follow, stop) is None:
                return
            waited = time.monotonic() - started
            pager.again()

    async def _fetch(self, call: Call[T], follow: bool, stop: asyncio.Event | None) -> T | None:
        if follow:
            return await self.client.patiently(call, stop)
        return await self.client.call(call)

    async def _partitions(self, partitions: Iterable[int] | None) -> list[int]:
        if partitions is not None:
            return [int(p) for p in partitions]
        try:
            return list(range(1, int((await self.settings())["partitions"]) + 1))
        except (AccessDenied, InvalidQueueName):
            return [1]

    async def get(self, refs: Iterable[Ref]) -> list[Message]:
        return await self.client.call(calls.get(self._paths, self.name, refs))

    async def put(
        self,
        refs: Iterable[Ref],
        body: str | bytes,
        ttl: int | None = None,
        content_type: str | None = None,
    ) -> None:
        await self.client.call(calls.put(self._paths, self.name, refs, body, ttl, content_type))

    async def delete_messages(self, refs: Iterable[Ref]) -> None:
        await self.client.call(calls.delete_messages(self._paths, self.name, refs))

    async def stream(
        self,
        since: Since | None = None,
        partitions: Iterable[int] | None = None,
        last_event_id: str | None = None,
        idle_timeout: float = 60.0,
    ) -> AsyncIterator[Message]:
        http = self.client._http
        resume = Resume(
            self.client._core, self.name, since, partitions, last_event_id, idle_timeout
        )
        while True:
            try:
                async with http.stream(**resume.request()) as response:
                    if response.status_code != 200:
                        await response.aread()
                        pause = resume.refused(response)
                    else:
                        resume.opened()
                        async for chunk in response.aiter_bytes():
                            for message in resume.messages(chunk):
                                yield message
                        pause = resume.ended()
            except httpx.RequestError as exc:
                pause = resume.broken(exc)
            await asyncio.sleep(pause)

    async def token(
        self,
        ttl: int | None = None,
        scope: str | Sequence[str] | None = None,
        partitions: Iterable[int] | None = None,
    ) -> Token:
        return await self.client.call(calls.token(self._paths, self.name, ttl, scope, partitions))

    def group(self, name: str) -> AsyncGroup:
        return AsyncGroup(self, name)

    async def groups(self) -> list[dict[str, Any]]:
        return await self.client.call(calls.list_groups(self._paths, self.name))
