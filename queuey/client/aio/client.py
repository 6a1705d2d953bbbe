"""The asyncio :class:`AsyncClient`: a connection pool, and sending calls with retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from queuey.client import calls
from queuey.client.aio.queue import AsyncQueue
from queuey.client.aio.waiting import sleep
from queuey.client.calls import Call
from queuey.client.core import DEFAULT_RETRY, TIMEOUT, Core, Retry
from queuey.client.errors import TRANSIENT

T = TypeVar("T")
log = logging.getLogger("queuey.client")


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
                await sleep(pause, stop)
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
