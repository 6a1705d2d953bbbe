"""Waiting for news on a queue without a thread: futures woken by local writes, or a timeout.

A waiting claim (and, later, a held range read or a stream) waits here
between looks at storage. A post, overwrite or release through this process
wakes the waiters of its queue at once; writes through other processes or
web nodes are seen at the waiter's next look (every ``POLL_SECONDS``).
At shutdown :meth:`Waiters.close` wakes every waiter for good, so held
requests answer with what they have instead of holding the server's drain.
"""

from __future__ import annotations

import asyncio

#: Longest wait between two looks at storage for a waiter nobody wakes.
POLL_SECONDS = 0.1


class Waiters:
    """Futures per queue handle, each resolved when that queue has news."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: waiting is over, answer now."""
        return self._closed

    async def wait(self, handle: str, timeout: float) -> None:
        """Return on ``notify(handle)``, after ``timeout`` seconds, or at once when closed."""
        if self._closed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(handle, set())
        waiting.add(future)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancellation.
            async with asyncio.timeout(timeout):
                await asyncio.shield(future)
        except TimeoutError:
            pass
        finally:
            waiting.discard(future)
            if not waiting:
                self._waiting.pop(handle, None)

    def notify(self, handle: str) -> None:
        """Wake every waiter of this queue (a no-op when nobody waits)."""
        for future in self._waiting.get(handle, ()):
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        """Wake every waiter of every queue, and every later one at once (the server stops).

        Call on the waiters' event loop. Idempotent.
        """
        self._closed = True
        for handle in list(self._waiting):
            self.notify(handle)

    @property
    def count(self) -> int:
        """Waiters now (for metrics)."""
        return sum(len(w) for w in self._waiting.values())
