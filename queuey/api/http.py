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

from queuey.config import DEFAULTS
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


class Request:
    """One HTTP request: what the endpoints read of it, parsed on first use."""

    __slots__ = (
        "_query", "headers", "method", "params", "read_timeout", "receive", "scope", "segments",
    )  # fmt: skip

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        segments: list[str],
        params: dict[str, str],
        read_timeout: float = DEFAULTS["read_timeout"],
    ) -> None:
        self.scope = scope
        self.receive = receive
        #: Seconds the body may stop arriving before :class:`RequestTimeout` (408).
        self.read_timeout = read_timeout
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
        arrives for ``read_timeout`` seconds: :class:`RequestTimeout` (408);
        when the body breaks off: :class:`ClientDisconnected`.
        """
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and declared.isascii():
            size = len(declared.lstrip("0"))
            if size > 20 or int(declared) > limit:
                raise BodyTooLarge(limit, int(declared) if size <= 20 else None)
        chunks: list[bytes] = []
        received = 0
        loop = asyncio.get_running_loop()
        try:
            # One timer for the whole body, pushed back whenever a part arrives.
            async with asyncio.timeout(self.read_timeout) as timer:
                while True:
                    message = await self.receive()
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
                    timer.reschedule(loop.time() + self.read_timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"Nothing of the request body arrived for {self.read_timeout:g} seconds."
            ) from None


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
