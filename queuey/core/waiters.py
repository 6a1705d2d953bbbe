"""Waiting for news on a queue without a thread: one wake-up mechanism for every waiter.

Held range reads (``wait``), waiting claims and event streams all wait here,
each through a :class:`Watch` of its queue — a future, never a thread:

- a write through this process (a post, an overwrite by id, a release, an
  acknowledge-and-publish) wakes the watches of its queue at once
  (:meth:`Waiters.notify`);
- writes through other processes or web nodes are heard by **one shared
  poll** per process: every ``POLL_SECONDS`` it asks the store for the change
  marks (``Storage.marks``) of the waited queues that are due, all in one
  call, and wakes the watches of each queue whose mark moved. A queue is due
  every 100 ms; where the store hides new messages for a settle delay
  (Cassandra), a queue that stays quiet is asked less often, doubling up to
  ``MAX_POLL_SECONDS`` (an overwrite by id of an old message is readable at
  once, so the poll never backs off as far as the settle delay itself);
- where a settle delay hides new messages, the newest key a write or a mark
  names schedules one more wake-up when its delay has passed
  (``SETTLE_GRID``: wake-ups are rounded up to a quarter second and shared);
- a deleted queue (:meth:`Waiters.gone`, or a mark saying so) wakes its
  watches for good, and they answer 404;
- at shutdown :meth:`Waiters.close` wakes every watch for good, so held
  requests answer with what they have and streams end, instead of holding
  the server's drain.

A watch keeps the news that arrives while its owner is not waiting (reading
storage, sending), so a write between a look at storage and the next wait
is never missed. Watches of one queue may share reads made between two
wake-ups (:meth:`Watch.shared`): a thousand streams at the same place cost
one read when a message arrives, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from queuey.storage.base import Queue, Storage
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between two polls of the change marks (a waited queue is asked at most this often).
POLL_SECONDS = 0.1
#: Longest pause between two polls of a quiet queue whose store has a settle delay.
MAX_POLL_SECONDS = 0.8
#: Settle wake-ups are rounded up to this many seconds, and one timer serves each.
SETTLE_GRID = 0.25
#: Kinds of waiters, counted apart for the metrics.
KINDS = ("read", "claim", "stream")
#: Reads remembered between two wake-ups of one queue, at most.
MAX_SHARED = 1000
_UNKNOWN = object()


class Watch:
    """One waiter's hold on one queue: news since it last woke, and a way to wait for more."""

    __slots__ = ("_due", "_future", "_news", "_queue", "_timer", "kind")

    def __init__(self, queue: _Watched, kind: str) -> None:
        self._queue = queue
        self.kind = kind
        self._news = False
        self._future: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    @property
    def gone(self) -> bool:
        """The queue was deleted (answer 404)."""
        return self._queue.gone

    @property
    def closed(self) -> bool:
        """The server is stopping: answer with what there is, end streams."""
        return self._queue.owner.closed

    def _wake(self) -> None:
        self._news = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def _ring(self) -> None:
        self._timer = None
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Until news of the queue (True) or ``timeout`` seconds (False); at once if news came.

        Also True at once when the queue is gone or the server is stopping.
        May return False before ``timeout`` (a timer of an earlier wait, which
        is kept rather than set again on every wait: thousands of streams
        woken by every message would otherwise arm as many timers each time);
        callers check their own deadlines.
        """
        if self._news or self.gone or self.closed:
            self._news = False
            return True
        loop = asyncio.get_running_loop()
        if timeout is not None:
            due = loop.time() + timeout
            if self._timer is None or self._due > due:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer, self._due = loop.call_at(due, self._ring), due
        future = self._future = loop.create_future()
        try:
            await future
        finally:
            self._future = None
        news, self._news = self._news, False
        return news

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def shared(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()``, or the result of the same read (``key``) since the queue's last wake-up.

        Any write the read might have missed wakes the queue, which forgets
        the reads made before it. The first caller reads in its own task (a
        read that does not suspend, as SQLite's small reads, is done before
        any other caller comes); a failed or cancelled read is forgotten and
        the callers waiting on it read again themselves.
        """
        while True:
            memo = self._queue.memo
            found = memo.get(key)
            if found is None:
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                memo[key] = future
                if len(memo) > MAX_SHARED:
                    memo.clear()
                try:
                    result = await fetch()
                except BaseException:
                    if memo.get(key) is future:
                        del memo[key]
                    future.set_exception(_Retry())
                    future.exception()  # retrieved: the waiters read again
                    raise
                future.set_result(result)
                return result
            if not found.done():
                with contextlib.suppress(_Retry):
                    # Shielded: a waiter that goes away does not cancel the others' read.
                    await asyncio.shield(found)
            if found.exception() is None:
                return cast(T, found.result())


class _Retry(Exception):
    """The shared read failed or was cancelled in its reader's task: read again."""


class _Watched:
    """A queue some watch waits on: its watches, its last mark, its poll schedule and timers."""

    def __init__(self, owner: Waiters, queue: Queue) -> None:
        self.owner = owner
        self.queue = queue
        self.watches: set[Watch] = set()
        self.version: object = _UNKNOWN
        self.gone = False
        self.interval = POLL_SECONDS
        self.next_poll = 0.0
        self.timers: dict[float, asyncio.TimerHandle] = {}
        self.memo: dict[Hashable, asyncio.Future[Any]] = {}
        #: The newest key written through this process (its watches were woken for it).
        self.notified: MessageKey | None = None
        #: The first look at its mark, which every watch beginning before it ends awaits.
        self.first: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self.memo = {}
        for watch in self.watches:
            watch._wake()

    def wake_when_settled(self, newest: MessageKey, settle: float) -> None:
        """One more wake-up once ``newest`` is ``settle`` seconds old (a settle delay hid it)."""
        loop = asyncio.get_running_loop()
        unix = (newest.ts - UNIX_EPOCH_TICKS) / 10_000_000 + settle
        due = loop.time() + max(0.0, unix - time.time())
        due = -(-due // SETTLE_GRID) * SETTLE_GRID  # rounded up: one timer per quarter second
        if due not in self.timers:
            self.timers[due] = loop.call_at(due, self._settled, due)

    def _settled(self, due: float) -> None:
        self.timers.pop(due, None)
        self.wake()

    def cancel_timers(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()


class Waiters:
    """The watches of one process, by queue handle, and the one poll that serves them all.

    ``storage``: where the shared poll reads change marks; without it only
    writes through this process wake watches (and their timeouts).
    """

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage
        self._queues: dict[str, _Watched] = {}
        self._closed = False
        self._poller: asyncio.Task[None] | None = None
        #: Marks read by the shared poll (for tests and the benchmark: one per due queue).
        self.polls = 0

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: waiting is over, answer now."""
        return self._closed

    def _settle(self, queue: Queue) -> float:
        return self.storage.settle_seconds(queue.settings.consistency) if self.storage else 0.0

    @contextlib.asynccontextmanager
    async def watch(self, queue: Queue, kind: str = "read") -> AsyncIterator[Watch]:
        """Watch ``queue`` for the block; look at storage only after entering it.

        The first watch of a queue reads its mark before the block starts, so
        that a write between the block's first look and the next poll moves
        the mark past the one remembered.
        """
        watched = self._queues.get(queue.handle)
        if watched is None:
            watched = self._queues[queue.handle] = _Watched(self, queue)
        elif queue.partitions > watched.queue.partitions:
            watched.queue = queue  # the newest copy: a mark covers every partition
        watch = Watch(watched, kind)
        watched.watches.add(watch)
        try:
            if watched.version is _UNKNOWN and self.storage is not None and not self._closed:
                if watched.first is None:  # one first look, however many watches begin at once
                    watched.first = asyncio.ensure_future(self._poll([watched]))
                await asyncio.shield(watched.first)
            if self._poller is None and self.storage is not None and not self._closed:
                self._poller = asyncio.get_running_loop().create_task(self._run())
            yield watch
        finally:
            watch._stop()
            watched.watches.discard(watch)
            if not watched.watches and self._queues.get(queue.handle) is watched:
                watched.cancel_timers()
                del self._queues[queue.handle]

    def notify(self, handle: str, newest: MessageKey | None = None, stamped: bool = True) -> None:
        """Messages were written to this queue through this process (``newest``: the newest key).

        Wakes its watches now and, where a settle delay hides new messages,
        once more when ``newest`` has settled. A no-op when nobody watches.
        ``stamped``: the store made the keys (a post), so they follow its commit
        order; an overwrite's ids are the caller's and say nothing of it.
        """
        watched = self._queues.get(handle)
        if watched is None:
            return
        watched.wake()
        settle = self._settle(watched.queue)
        if newest is not None:
            if stamped and (watched.notified is None or newest > watched.notified):
                watched.notified = newest
            if settle > 0:
                watched.wake_when_settled(newest, settle)

    def gone(self, handle: str) -> None:
        """This queue incarnation was deleted: its watches wake for good (and answer 404)."""
        watched = self._queues.get(handle)
        if watched is not None:
            watched.gone = True
            watched.wake()

    def close(self) -> None:
        """Wake every watch for good, and every later one at once (the server stops).

        Call on the watches' event loop. Idempotent.
        """
        self._closed = True
        for watched in self._queues.values():
            watched.cancel_timers()
            watched.wake()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def count(self, kind: str | None = None) -> int:
        """Watches now, of one kind or all (for the metrics)."""
        return sum(
            1
            for watched in self._queues.values()
            for watch in watched.watches
            if kind is None or watch.kind == kind
        )

    @property
    def queues(self) -> int:
        """Queues watched now."""
        return len(self._queues)

    # -- the shared poll --------------------------------------------------------------

    async def _run(self) -> None:
        """Every ``POLL_SECONDS``, the marks of the waited queues that are due, in one call."""
        loop = asyncio.get_running_loop()
        try:
            while self._queues and not self._closed:
                await asyncio.sleep(POLL_SECONDS)
                now = loop.time()
                due = [w for w in self._queues.values() if w.next_poll <= now]
                if due:
                    await self._poll(due)
        finally:
            if self._poller is asyncio.current_task():
                self._poller = None

    async def _poll(self, due: list[_Watched]) -> None:
        assert self.storage is not None
        loop = asyncio.get_running_loop()
        try:
            marks = await self.storage.marks([w.queue for w in due])
        except Exception as exc:  # noqa: BLE001 - the store is down: requests see it; poll again
            log.debug("polling change marks failed: %s", exc)
            for watched in due:
                watched.next_poll = loop.time() + POLL_SECONDS
            return
        self.polls += len(due)
        now = loop.time()
        for watched, mark in zip(due, marks, strict=True):
            settle = self._settle(watched.queue)
            if mark.gone:
                watched.gone = True
                watched.wake()
                continue
            first = watched.version is _UNKNOWN
            changed = not first and mark.version != watched.version
            watched.version = mark.version
            if changed and mark.ordered and _ours(mark.newest, watched.notified):
                changed = False  # the move was this process's own write: already woken for it
            if changed:
                watched.wake()
                watched.interval = POLL_SECONDS
            elif settle > 0:  # quiet: back off, never beyond what keeps answers within 1 s
                watched.interval = min(watched.interval * 2, MAX_POLL_SECONDS)
            if (changed or first) and settle > 0 and mark.newest is not None:
                watched.wake_when_settled(mark.newest, settle)
            watched.next_poll = now + watched.interval


def _ours(newest: MessageKey | None, notified: MessageKey | None) -> bool:
    """Does an ``ordered`` mark name no write after the newest one this process announced?

    Then it moved for that write, or for one committed before it, which the
    watches woken for it read (``QueueMark.ordered``: SQLite's file-wide key
    clock; never Cassandra's, whose web nodes stamp keys on their own).
    """
    return newest is not None and notified is not None and newest.ts <= notified.ts
