"""GET /v1/{app}/{queue}/stream: a queue's messages as Server-Sent Events (SPEC §7).

The request is resolved as a range read (``routes.V1``: 401, 404, 403, 429,
then 400 from core), so every error is a JSON answer before any event. Then
the response streams (``http.StreamingResponse``): ``retry: 1000`` first, one
event per message in id order (``core.streams``), a comment after
``stream_heartbeat`` seconds of silence, and a clean end after
``stream_max_seconds``, when the credential that opened it expires, when the
queue is deleted, or when the server stops. A stream holds a watch of its
queue (``core.waiters``): no thread, and woken within the poll's bound by
writes of any process or web node.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import msgspec

from queuey.api.http import BodyWriter, Request, Response, StreamingResponse
from queuey.api.routes import V1
from queuey.api.routing import Route, route
from queuey.core.access import accepted_until, may_read, partitions_asked, token_partitions
from queuey.core.messages import message_info
from queuey.core.streams import Message, Stream
from queuey.core.waiters import Waiters

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
#: What every stream begins with: reconnect after a second (SPEC §7).
RETRY = b"retry: 1000\n\n"
HEARTBEAT = b": heartbeat\n\n"
HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
#: Events remembered once encoded (streams at the same place send the same bytes).
ENCODED = 10_000


def event(message: dict[str, object]) -> bytes:
    """One message as an event; its JSON is one line (msgspec escapes line ends)."""
    return b"id: %s\nevent: message\ndata: %s\n\n" % (
        str(message["message_id"]).encode(),
        _encode(message),
    )


class StreamRoutes:
    """The event stream of every queue, over the v1 endpoints' resolution and rights."""

    def __init__(
        self, v1: V1, heartbeat: float, max_seconds: float, max_pending: int = 1024 * 1024
    ) -> None:
        self.v1 = v1
        self.waiters: Waiters = v1.messages.waiters
        self.heartbeat = heartbeat
        self.max_seconds = max_seconds
        self.max_pending = max_pending
        self._encoded: dict[tuple[str, int, object], bytes] = {}

    def _event(self, handle: str, message: Message) -> bytes:
        """The event of a message, encoded once for every stream that sends it."""
        key = (handle, message.partition, message.key)
        found = self._encoded.get(key)
        if found is None:
            if len(self._encoded) >= ENCODED:
                self._encoded.clear()
            found = self._encoded[key] = event(message_info(message))
        return found

    async def stream(self, request: Request) -> Response:
        principals, queue = await self.v1.queue(request)
        held = token_partitions(principals, queue)
        default = [p for p in range(1, queue.partitions + 1) if held is None or p in held]
        asked = partitions_asked(request.query.get("partitions"), default=default)
        self.v1.grant(request, may_read(principals, queue, asked))
        opened = await Stream.open(
            self.v1.messages.storage,
            queue,
            request.query,
            request.header(b"last-event-id"),
            default,
        )
        ends = accepted_until(principals)

        async def produce(out: BodyWriter) -> None:
            await self._run(opened, out, ends)

        return StreamingResponse(produce, headers=HEADERS, max_pending=self.max_pending)

    async def _run(self, stream: Stream, out: BodyWriter, expires: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_seconds if self.max_seconds > 0 else math.inf
        if expires is not None:  # the credential that opened it
            deadline = min(deadline, loop.time() + (expires - time.time()))
        out.write(RETRY)
        silent_since = loop.time()
        app = stream.queue.app
        async with self.waiters.watch(stream.queue, "stream") as watch:
            while not (watch.gone or watch.closed):
                try:
                    messages = await stream.next(watch)
                except Exception as exc:  # noqa: BLE001 - the store failed: end; the client resumes
                    log.warning("event stream ended: %s", exc)
                    return
                if messages:
                    handle = stream.queue.handle
                    out.write(b"".join(self._event(handle, m) for m in messages))
                    self.v1.count("read", app, len(messages))
                    silent_since = loop.time()
                    if stream.more:
                        continue
                now = loop.time()
                if now >= deadline:
                    return
                timeout = deadline - now
                if self.heartbeat > 0:
                    if now - silent_since >= self.heartbeat:
                        out.write(HEARTBEAT)
                        silent_since = now
                    timeout = min(timeout, silent_since + self.heartbeat - now)
                await watch.wait(timeout)

    def routes(self) -> list[Route]:
        return [route("/v1/{app}/{queue}/stream", get=self.stream)]
