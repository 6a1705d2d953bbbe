"""The asyncio client: :class:`AsyncClient`, :class:`AsyncQueue`, :class:`AsyncGroup`.

The same shape as the blocking client (``queuey.client.sync``), method for
method, with ``await``, ``async for`` and ``async with``; both send the calls
of ``queuey.client.calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from queuey.client import calls
from queuey.client.calls import Call, Receipt, Ref, Since
from queuey.client.core import DEFAULT_RETRY, TIMEOUT, Core, Retry
from queuey.client.errors import (
    AccessDenied,
    ConnectionFailed,
    InvalidQueueName,
    LeaseLost,
    QueueyError,
    StorageUnavailable,
    TooManyRequests,
)
from queuey.client.leases import AsyncLeaseKeeper
from queuey.client.models import Delivery, Message, Sent, Tally, Token
from queuey.client.paging import Pager
from queuey.client.sse import EventParser, message_of

T = TypeVar("T")
log = logging.getLogger("queuey.client")

TRANSIENT = (ConnectionFailed, StorageUnavailable, TooManyRequests)


async def _sleep(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep, or less if ``stop`` is set meanwhile; whether it is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


class AsyncClient:
    """The asyncio twin of :class:`~queuey.client.Client` (same arguments)."""

    def __init__(
        self,
        url: str,
        app: str,
        key: str | None = None,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout | None = TIMEOUT,
        retry: Retry | int | None = DEFAULT_RETRY,
        idempotent_posts: bool = True,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = Core(url, app, key, token, timeout, retry, idempotent_posts)
        self._http = httpx.AsyncClient(
            base_url=self._core.url,
            headers=self._core.headers,
            timeout=self._core.timeout,
            limits=limits or httpx.Limits(),
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._core.url

    @property
    def app(self) -> str:
        return self._core.app

    def queue(self, name: str) -> AsyncQueue:
        """A handle on a queue of this application (nothing is sent)."""
        return AsyncQueue(self, name)

    async def queues(
        self, details: bool = False, count: bool = False, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every queue of the application, in name order, paging with ``next``."""
        offset = None
        while True:
            call = calls.list_queues(self._core.paths, offset, page_size, details, count)
            items, offset = await self.call(call)
            for item in items:
                yield item
            if not offset:
                return

    async def call(self, call: Call[T]) -> T:
        """Send ``call``, resending it as :class:`Retry` allows; its result, or raise."""
        core = self._core
        attempt = 0
        while True:
            try:
                response = await self._http.request(**core.request(call))
            except httpx.RequestError as exc:
                pause = core.retry.after_error(call, attempt, exc)
                if pause is None:
                    raise core.failure(exc) from exc
            else:
                pause = core.retry.after_answer(
                    call, attempt, response.status_code, response.headers
                )
                if pause is None:
                    return core.result(call, response)
            await asyncio.sleep(pause)
            attempt += 1

    async def patiently(self, call: Call[T], stop: asyncio.Event | None = None) -> T | None:
        """``call``, waiting out failures that pass until it answers; None if ``stop`` is set."""
        while stop is None or not stop.is_set():
            try:
                return await self.call(call)
            except TRANSIENT as exc:
                pause = getattr(exc, "retry_after", None) or self._core.retry.max_backoff
                log.warning("%s; trying again in %.1f s", exc, pause)
                await _sleep(pause, stop)
        return None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


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
        fields = {
            "partitions": partitions,
            "type": type,
            "consistency": consistency,
            "principles": principles,
        }
        return await self.client.call(calls.create_queue(self._paths, self.name, fields))

    async def update(
        self,
        partitions: int | None = None,
        type: str | None = None,
        consistency: str | None = None,
        principles: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        fields = {
            "partitions": partitions,
            "type": type,
            "consistency": consistency,
            "principles": principles,
        }
        return await self.client.call(calls.update_queue(self._paths, self.name, fields))

    async def settings(self, count: bool = False) -> dict[str, Any]:
        items, _ = await self.client.call(calls.list_queues(self._paths, self.name, 1, True, count))
        if items and items[0].get("queue_name") == self.name:
            return items[0]
        message = "Queue of that name was not found."
        raise InvalidQueueName(f"InvalidQueueName: {message}", 404, {"InvalidQueueName": message})

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
        if idempotency_key is None and self.client._core.idempotent_posts:
            idempotency_key = calls.new_idempotency_key()
        call = calls.post(
            self._paths, self.name, body, ttl, partition, content_type, idempotency_key
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
            if pause and await _sleep(pause, stop):
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
        core = self.client._core
        http = self.client._http
        last = last_event_id
        delay = 1.0
        attempt = 0
        connected = False
        timeout = httpx.Timeout(core.timeout.connect, read=idle_timeout)
        while True:
            call = calls.stream(self._paths, self.name, since, partitions, last)
            request = core.request(call)
            request["timeout"] = timeout
            pause: float | None
            try:
                async with http.stream(**request) as response:
                    if response.status_code != 200:
                        await response.aread()
                        pause = core.retry.after_answer(
                            call, attempt, response.status_code, response.headers
                        )
                        if pause is None:
                            core.result(call, response)
                            raise QueueyError(f"HTTP {response.status_code}")
                    else:
                        connected, attempt = True, 0
                        parser = EventParser()
                        async for chunk in response.aiter_bytes():
                            for event in parser.feed(chunk):
                                message = message_of(event)
                                if message is not None:
                                    yield message
                            if parser.last_id is not None:
                                last = parser.last_id
                        delay = parser.retry / 1000 if parser.retry is not None else delay
                        pause = delay
            except httpx.RequestError as exc:
                pause = core.retry.after_error(call, attempt, exc)
                if pause is None and not connected:
                    raise core.failure(exc) from exc
                pause = max(delay, pause or core.retry.pause(attempt))
            await asyncio.sleep(pause)
            attempt += 1

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


#: A handler of ``AsyncGroup.consume``: a coroutine function (or a plain function).
AsyncHandler = Callable[[Delivery], object]


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
        fields = {
            "guarantee": guarantee,
            "lease_seconds": lease_seconds,
            "max_deliveries": max_deliveries,
            "dead_letter_queue": dead_letter_queue,
            "ordered": ordered,
            "start": start if start in (None, "earliest", "latest") else calls.since_text(start),
        }
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
        tally = Tally()
        stopped = stop or asyncio.Event()
        keeper = AsyncLeaseKeeper(self.extend)
        try:
            while not stopped.is_set():
                call = calls.claim(*self._at, limit, wait, partitions, consumer)
                batch = await self._client.patiently(call, stopped) or []
                keeper.hold(batch)
                for delivery in batch:
                    if stopped.is_set():
                        break
                    await self._handle(handler, delivery, keeper, tally, delay)
                await self._release(keeper, tally)
        except asyncio.CancelledError:
            await self._release(keeper, tally)
            raise
        finally:
            await keeper.close()
        return tally

    async def _handle(
        self,
        handler: AsyncHandler,
        delivery: Delivery,
        keeper: AsyncLeaseKeeper,
        tally: Tally,
        delay: int | None,
    ) -> None:
        if keeper.is_lost(delivery):
            keeper.drop(delivery)
            tally.lost += 1
            return
        try:
            outcome = handler(delivery)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            keeper.drop(delivery)
            tally.failed += 1
            log.exception("handler failed on %s; releasing it", delivery.ref)
            tally.released += await self._settle(self.release([delivery], delay), tally, 1)
            return
        keeper.drop(delivery)
        tally.handled += 1
        tally.acknowledged += await self._settle(self.ack([delivery]), tally, 1)

    async def _release(self, keeper: AsyncLeaseKeeper, tally: Tally) -> None:
        held = keeper.held()
        for delivery in held:
            keeper.drop(delivery)
        if held:
            tally.released += await self._settle(self.release(held), tally, len(held))

    @staticmethod
    async def _settle(action: Awaitable[object], tally: Tally, count: int) -> int:
        try:
            await action
        except LeaseLost as exc:
            tally.lost += len(exc.lost)
            return count - len(exc.lost)
        except TRANSIENT as exc:
            log.warning("could not settle %d message(s): %s", count, exc)
            tally.lost += count
            return 0
        return count
