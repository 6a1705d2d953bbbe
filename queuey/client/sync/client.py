"""The blocking :class:`Client`: a connection pool, and sending calls with retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from queuey.client import calls
from queuey.client.calls import Call
from queuey.client.core import DEFAULT_RETRY, TIMEOUT, Core, Retry
from queuey.client.errors import TRANSIENT
from queuey.client.sync.queue import Queue

T = TypeVar("T")
log = logging.getLogger("queuey.client")


class Client:
    """A connection pool to one Queuey server, acting as one application.

    ``key`` is an application key, ``token`` a bearer token (both may be given;
    neither reads public queues). ``timeout`` is per request in seconds (or an
    ``httpx.Timeout``); ``retry`` says when to resend (:class:`Retry`, or a number
    of attempts, or None for never). Every post carries a fresh idempotency key
    unless ``idempotent_posts`` is false, so that a resent post is stored once.
    """

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = Core(url, app, key, token, timeout, retry, idempotent_posts)
        self._http = httpx.Client(
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

    def queue(self, name: str) -> Queue:
        """A handle on a queue of this application (nothing is sent)."""
        return Queue(self, name)

    def queues(
        self, details: bool = False, count: bool = False, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every queue of the application, in name order, paging with ``next``.

        Items carry ``queue_name``; with ``details`` also the settings, with
        ``count`` also the number of messages.
        """
        offset = None
        while True:
            call = calls.list_queues(self._core.paths, offset, page_size, details, count)
            items, offset = self.call(call)
            yield from items
            if not offset:
                return

    def call(self, call: Call[T]) -> T:
        """Send ``call``, resending it as :class:`Retry` allows; its result, or raise."""
        core = self._core
        attempt = 0
        while True:
            try:
                response = self._http.request(**core.request(call))
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
            time.sleep(pause)
            attempt += 1

    def patiently(self, call: Call[T], stop: threading.Event | None = None) -> T | None:
        """``call``, waiting out failures that pass (a restarting server) until it answers.

        None only when ``stop`` was set meanwhile.
        """
        while stop is None or not stop.is_set():
            try:
                return self.call(call)
            except TRANSIENT as exc:
                pause = getattr(exc, "retry_after", None) or self._core.retry.max_backoff
                log.warning("%s; trying again in %.1f s", exc, pause)
                if stop is None:
                    time.sleep(pause)
                else:
                    stop.wait(pause)
        return None

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
