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
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec

from queuey.core.errors import RequestTimeout

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

    async def send(self, send: Send, head: bool = False) -> None:
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


def json_response(
    content: Any, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
) -> Response:
    return Response(_encode(content), status, headers)


OK = {"status": "ok"}
