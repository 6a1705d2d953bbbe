"""Following a queue's event stream across reconnections: what both clients' ``stream`` share.

A stream that breaks, ends or stays silent too long is opened again after the
server's ``retry:`` delay, with ``Last-Event-ID`` so that nothing repeats and
nothing is missed. A failure before the first connection is raised, as any
request's would be; once connected, a broken connection is waited out. No I/O
here (as in ``paging``): each client opens the requests and sleeps the pauses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from queuey.client import calls
from queuey.client.calls import Call, Since
from queuey.client.core import Core
from queuey.client.errors import QueueyError
from queuey.client.models import Message
from queuey.client.sse import EventParser, message_of


class Resume:
    """Where one ``stream`` stands: the request it opens next, and how long to wait first."""

    def __init__(
        self,
        core: Core,
        queue: str,
        since: Since | None,
        partitions: Iterable[int] | None,
        last_event_id: str | None,
        idle_timeout: float,
    ) -> None:
        self._core = core
        self._queue = queue
        self._since = since
        self._partitions = partitions
        self.last = last_event_id
        #: Seconds between connections: the server's ``retry:`` once it sent one.
        self.delay = 1.0
        self.attempt = 0
        self.connected = False
        self._timeout = httpx.Timeout(core.timeout.connect, read=idle_timeout)
        self._call: Call[None] = self._next_call()
        self._parser = EventParser()

    def _next_call(self) -> Call[None]:
        core = self._core
        return calls.stream(core.paths, self._queue, self._since, self._partitions, self.last)

    def request(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.stream`` for the next connection."""
        self._call = self._next_call()
        request = self._core.request(self._call)
        request["timeout"] = self._timeout
        return request

    def refused(self, response: httpx.Response) -> float:
        """Seconds to wait after an answer other than 200 (its body read); or raise its error."""
        core = self._core
        pause = core.retry.after_answer(
            self._call, self.attempt, response.status_code, response.headers
        )
        if pause is None:
            core.result(self._call, response)  # raises the error answered
            raise QueueyError(f"HTTP {response.status_code}")
        self.attempt += 1
        return pause

    def opened(self) -> None:
        """The stream is open (200): events follow."""
        self.connected, self.attempt = True, 0
        self._parser = EventParser()

    def messages(self, chunk: bytes) -> Iterator[Message]:
        """The messages ``chunk`` completes; then where a reconnection starts."""
        for event in self._parser.feed(chunk):
            message = message_of(event)
            if message is not None:
                yield message
        if self._parser.last_id is not None:
            self.last = self._parser.last_id

    def ended(self) -> float:
        """Seconds to wait after the server ended the stream: the delay it asked for."""
        if self._parser.retry is not None:
            self.delay = self._parser.retry / 1000
        self.attempt += 1
        return self.delay

    def broken(self, error: httpx.RequestError) -> float:
        """Seconds to wait after the connection failed; raised if it never got through."""
        core = self._core
        pause = core.retry.after_error(self._call, self.attempt, error)
        if pause is None and not self.connected:
            raise core.failure(error) from error
        pause = max(self.delay, pause or core.retry.pause(self.attempt))
        self.attempt += 1
        return pause
