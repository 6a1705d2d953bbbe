"""The small HTTP layer Queuey runs on: requests and JSON responses over raw ASGI.

Queuey's routes are few and fixed, and every answer is JSON, so a framework's
generality costs more than it gives: measured on one core (docs/architecture.md),
Starlette's request/response objects and routing took more than half of the
time of a POST. This module holds only what the endpoints use: the path as
segments (empty ones dropped, as the original's router did), the query as a
dict, headers, a body read with a size limit and a read timeout, and JSON answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import msgspec

from queuey.core.errors import RequestTimeout

T = TypeVar("T")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_encode = msgspec.json.Encoder().encode
#: Scope key the app sets when a request body broke off (the access log counts it as gone).
BROKEN_OFF = "queuey.broken_off"


class ClientDisconnected(Exception):
    """The request body broke off before its end.

    granian reports a client that went away and a body whose framing is
    malformed (a bad chunk size) alike, as ``http.disconnect``; a client that
    only half-closed its side, or sent a bad chunk, is still there to read an
    answer, so one is sent (a 400) in case.
    """


class BodyTooLarge(Exception):
    """The request body passed the limit (``declared``: said so in Content-Length)."""

    def __init__(self, limit: int, declared: int | None) -> None:
        self.limit = limit
        self.declared = declared
        super().__init__(limit, declared)


def path_segments(scope: Scope) -> list[str]:
    """The path's segments, percent-decoded one by one, empty ones dropped.

    ``/v1//queuey/`` is ``["v1", "queuey"]``. Segments are split on the raw
    path, so an encoded ``%2F`` stays inside its segment.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return [s for s in scope["path"].split("/") if s]
    text = raw.split(b"?", 1)[0].decode("latin-1")
    return [unquote(s) for s in text.split("/") if s]


class ReadTimeouts:
    """Ends body reads that stall for ``seconds``: one sweep a while, not a timer per request.

    A body read marks its task as waiting (:meth:`waiting`) before each
    ``receive()`` and unmarks it after (:meth:`arrived`); a callback on the
    event loop, armed while some read waits, cancels the tasks that have
    waited ``seconds`` or more and records them (:meth:`expired`). That
    costs a body read about 1 µs, where a timer of its own (asyncio.timeout)
    cost 6-9 µs, of the some 100 µs of a small POST. A read ends between
    ``seconds`` and ``seconds`` plus a quarter of it (at most one second
    more) after its last byte.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._every = min(seconds / 4, 1.0)
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._armed: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def waiting(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # another event loop (tests run one app in several)
            self._loop, self._armed = loop, None
            self._waiting.clear()
            self._expired.clear()
        self._waiting[task] = loop.time()
        if self._armed is None:
            self._armed = loop.call_later(self._every, self._sweep, loop)

    def arrived(self, task: asyncio.Task[Any]) -> None:
        self._waiting.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Was this task cancelled here? (Then it is forgotten.)"""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._armed = None
        now = loop.time()
        for task, since in list(self._waiting.items()):
            if now - since >= self.seconds:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        if self._waiting:
            self._armed = loop.call_later(self._every, self._sweep, loop)


class Request:
    """One HTTP request: what the endpoints read of it, parsed on first use."""

    __slots__ = (
        "_query", "headers", "method", "params", "receive", "scope", "segments", "timeouts",
    )  # fmt: skip

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        segments: list[str],
        params: dict[str, str],
        timeouts: ReadTimeouts | None = None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        #: How long the body may stop arriving before :class:`RequestTimeout` (None: forever).
        self.timeouts = timeouts
        self.method: str = scope["method"]
        self.segments = segments
        self.params = params
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self._query: dict[str, str] | None = None

    def header(self, name: bytes) -> str | None:
        """The first header of this (lowercase) name, or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def header_list(self, name: bytes) -> list[str]:
        return [v.decode("latin-1") for k, v in self.headers if k == name]

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; of a repeated one, the last."""
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = dict(parse_qsl(raw, keep_blank_values=True)) if raw else {}
        return self._query

    @property
    def media_type(self) -> str:
        value = self.header(b"content-type") or ""
        return value.split(";", 1)[0].strip().lower()

    async def body(self, limit: int) -> bytes:
        """The whole body; :class:`BodyTooLarge` as soon as it passes ``limit`` bytes.

        A declared Content-Length over the limit is refused before anything is
        read; a body without one is counted as it arrives. When nothing more
        arrives for ``timeouts.seconds``: :class:`RequestTimeout` (408); when
        the body breaks off: :class:`ClientDisconnected`.
        """
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and declared.isascii():
            size = len(declared.lstrip("0"))
            if size > 20 or int(declared) > limit:
                raise BodyTooLarge(limit, int(declared) if size <= 20 else None)
        chunks: list[bytes] = []
        received = 0
        timeouts = self.timeouts
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        while True:
            if timeouts is None or task is None:
                message = await self.receive()
            else:
                timeouts.waiting(task, loop)
                try:
                    message = await self.receive()
                except asyncio.CancelledError:
                    if not timeouts.expired(task):
                        raise
                    task.uncancel()
                    raise RequestTimeout(
                        f"Nothing of the request body arrived for {timeouts.seconds:g} seconds."
                    ) from None
                finally:
                    timeouts.arrived(task)
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk: bytes = message.get("body", b"")
            if chunk:
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge(limit, None)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Response:
    """A response to send: status, body bytes and extra headers."""

    __slots__ = ("body", "headers", "media_type", "status")

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        headers: Iterable[tuple[bytes, bytes]] = (),
        media_type: bytes = b"application/json",
    ) -> None:
        self.body = body
        self.status = status
        self.headers = list(headers)
        self.media_type = media_type

    async def send(self, send: Send, head: bool = False, receive: Receive | None = None) -> None:
        """Send it; for HEAD, the headers GET would have and no body."""
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", self.media_type),
                    (b"content-length", str(len(self.body)).encode()),
                    *self.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else self.body})


class SlowClient(Exception):
    """More than a stream's ``max_pending`` bytes wait for a client that stopped reading."""


class BodyWriter:
    """What a streaming response's producer writes to: chunks queued for the client.

    The producer never waits for the client: :meth:`write` queues a chunk
    and returns, and raises :class:`SlowClient` once more than
    ``max_pending`` bytes wait (the client is then dropped). The sender,
    :meth:`StreamingResponse.send`, hands them to the server as fast as the
    connection takes them.
    """

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self._chunks: list[bytes] = []
        self._ready = asyncio.Event()

    def write(self, chunk: bytes) -> None:
        if self.pending + len(chunk) > self.max_pending:
            raise SlowClient(f"{self.pending} bytes wait for the client")
        self._chunks.append(chunk)
        self.pending += len(chunk)
        self._ready.set()

    async def take(self) -> bytes:
        """Everything queued, as one chunk, once there is some."""
        await self._ready.wait()
        self._ready.clear()
        chunk, self._chunks = b"".join(self._chunks), []
        return chunk

    def sent(self, size: int) -> None:
        self.pending -= size


#: Makes a streaming response's body: writes to the writer until it returns (the end).
Producer = Callable[[BodyWriter], Awaitable[None]]
#: How long a stream that ends may take to hand its last chunks, then its end, to the
#: client (each): a client that stopped reading must not hold a worker's shutdown.
FLUSH_SECONDS = 2.0


class StreamingResponse(Response):
    """A response whose body is made while it is sent (an event stream).

    ``produce(writer)`` writes the body; the response ends when it returns,
    when it raises :class:`SlowClient` (the client stopped reading), or when
    the client goes away (``http.disconnect``: the producer is cancelled —
    granian does not fail a send to a closed connection, so the disconnect
    is heard on ``receive``). HEAD sends the headers only and never starts
    the producer.
    """

    __slots__ = ("max_pending", "produce")

    def __init__(
        self,
        produce: Producer,
        status: int = 200,
        headers: Iterable[tuple[bytes, bytes]] = (),
        media_type: bytes = b"text/event-stream",
        max_pending: int = 1024 * 1024,
    ) -> None:
        super().__init__(b"", status, headers, media_type)
        self.produce = produce
        self.max_pending = max_pending

    async def send(self, send: Send, head: bool = False, receive: Receive | None = None) -> None:
        headers = [(b"content-type", self.media_type), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        writer = BodyWriter(self.max_pending)
        producer = asyncio.ensure_future(self.produce(writer))
        gone = asyncio.ensure_future(_disconnected(receive)) if receive is not None else None

        async def sender() -> None:
            while True:
                chunk = await writer.take()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                writer.sent(len(chunk))

        sending = asyncio.ensure_future(sender())
        waited = {producer, sending} | ({gone} if gone is not None else set())
        dropped = False
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            dropped = gone is not None and gone.done()
            if producer.done() and not producer.cancelled():
                exc = producer.exception()
                if isinstance(exc, SlowClient):
                    dropped = True  # no end to send: the server drops the connection
                elif exc is not None:
                    raise exc
                elif writer.pending and not dropped:
                    # The producer ended: let what it wrote reach the client, briefly.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(FLUSH_SECONDS):
                            while writer.pending and not sending.done():
                                await asyncio.sleep(0.01)
        finally:
            for task in waited:
                task.cancel()
            await asyncio.gather(*waited, return_exceptions=True)
        failed = sending.exception() if sending.done() and not sending.cancelled() else None
        if failed is not None:
            raise failed
        if not dropped:
            # A client that stopped reading may leave no room for it: then the connection
            # is dropped when the app returns without the end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T:
    """``work``'s result, unless the client goes away first: then ``work`` is cancelled
    and :class:`ClientDisconnected` raised (a held read must not outlive its client:
    it holds a waiter, counted in the metrics, until its ``wait`` ends).

    Only for requests whose body has been read (or that have none): the
    client's leaving is heard as ``http.disconnect`` from ``receive``.
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    if not task.cancelled() and task.done():
        return task.result()
    raise ClientDisconnected()


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the request body, if any, is ignored)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def json_response(
    content: Any, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
) -> Response:
    return Response(_encode(content), status, headers)


OK = {"status": "ok"}
