"""Group windows on Cassandra: read, and changed only by compare-and-set (LWT).

A group's delivery state is one ``storage.window.Window`` per queue partition,
a row of ``group_windows`` keyed by ``(gid, partition)``.

Every window change is a compare-and-set (:meth:`Windows._change`): read the
row, apply ``storage.window`` in memory, write it back with ``UPDATE ... IF
version = ?`` (``INSERT ... IF NOT EXISTS`` for a first window); a lost race
reads again at SERIAL and applies again, at most :data:`ATTEMPTS` times, then
StoreUnavailable. So a message is never leased twice at once. A write whose
outcome the driver cannot tell (a Paxos timeout) is settled by a SERIAL read
looking for the write's own ``writer`` id. The Paxos phase runs at SERIAL
for every queue (LOCAL_SERIAL would let two data centres lease one message),
the commit and plain reads at the queue's levels. Lease times are judged by
the web node's clock (:func:`now_ms`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple, TypeVar

from cassandra import ConsistencyLevel

from queuey.storage import window as w
from queuey.storage.base import Queue, StoreUnavailable
from queuey.storage.cassandra import trace
from queuey.storage.cassandra.messages import bounded
from queuey.storage.cassandra.session import LAST_HOSTS, Connection, Levels
from queuey.storage.groups import Group

T = TypeVar("T")
#: Compare-and-set rounds of one window change before it gives up (StoreUnavailable).
ATTEMPTS = 32
#: Seconds of the longest pause between two rounds grows by this much each round.
BACKOFF = 0.005
SERIAL = ConsistencyLevel.SERIAL
_EMPTY = w.dump(w.load(None))

#: A window change: changes the window in place; called with the round (0 first).
Apply = Callable[[w.Window, int], Awaitable[T]]


class Stored(NamedTuple):
    """A window row as read: ``version`` 0 when there is none yet."""

    version: int
    blob: bytes | None
    writer: uuid.UUID | None


def now_ms() -> int:
    """The web node's clock, which judges lease times."""
    return time.time_ns() // 1_000_000


def group_rules(group: Group, max_in_flight: int = 0) -> w.Rules:
    """The window rules of a group's settings."""
    s = group.settings
    return w.Rules(s.guarantee, s.lease_seconds * 1000, s.max_deliveries, s.ordered, max_in_flight)


class Windows:
    """Reading and compare-and-setting the windows of groups (a part of ``groups.Groups``)."""

    _db: Connection
    _levels: Levels

    async def _read(self, gid: uuid.UUID, partition: int, level: int) -> Stored:
        rows = await self._db.run("window", (gid, partition), level)
        if not rows:
            return Stored(0, None, None)
        return Stored(rows[0].version, rows[0].window, rows[0].writer)

    async def _write(
        self, gid: uuid.UUID, partition: int, stored: Stored, blob: bytes, queue: Queue
    ) -> bool:
        """Write ``blob`` if the row is still ``stored``; whether it was written."""
        writer = uuid.uuid4()
        if stored.version == 0:
            name, args = "insert_window", (gid, partition, blob, writer)
        else:
            name = "update_window"
            args = (stored.version + 1, blob, writer, gid, partition, stored.version)  # type: ignore[assignment]
        level = self._levels.write[queue.settings.consistency]
        try:
            rows = await self._db.run(name, args, level, SERIAL)
        except StoreUnavailable as exc:
            hosts = LAST_HOSTS.get()
            # Timed out in Paxos: the outcome is unknown until a serial read settles it.
            try:
                found = await self._read(gid, partition, SERIAL)
            except StoreUnavailable as again:
                if trace.enabled():
                    _trace(gid, partition, stored, blob, writer, "unknown", exc, hosts, None, again)
                raise
            if trace.enabled():
                _trace(gid, partition, stored, blob, writer, "unknown", exc, hosts, found)
            return found.writer == writer
        if trace.enabled():
            row = rows[0]
            seen = None if row[0] else Stored(row.version, None, getattr(row, "writer", None))
            _trace(gid, partition, stored, blob, writer, bool(row[0]), None, LAST_HOSTS.get(), seen)
        return bool(rows[0][0])

    async def _change(
        self, group: Group, partition: int, apply: Apply[T], first: Stored | None = None
    ) -> T:
        """Apply ``apply`` to the partition's window by compare-and-set; its result.

        ``apply`` changes the window in place (nothing changed: nothing written)
        and is called again on the fresh window after a lost race (its second
        argument: the round, 0 first). ``first``: the row as already read.
        """
        gid = uuid.UUID(group.handle)
        read = self._levels.read[group.queue.settings.consistency]
        for attempt in range(ATTEMPTS):
            if attempt == 0 and first is not None:
                stored = first
            else:  # after a lost race, read what won (SERIAL: a replica may lag)
                stored = await self._read(gid, partition, read if attempt == 0 else SERIAL)
            window = w.load(stored.blob)
            result = await apply(window, attempt)
            blob = w.dump(window)
            if blob == (_EMPTY if stored.blob is None else stored.blob):
                return result
            if await self._write(gid, partition, stored, blob, group.queue):
                return result
            await asyncio.sleep(random.uniform(0, BACKOFF * (attempt + 1)))
        raise StoreUnavailable(f"group {group.name!r} kept changing (partition {partition})")

    async def _drop_windows(self, gid: uuid.UUID, partitions: Iterable[int]) -> None:
        # Conditional, as every other write of a window: a plain delete takes the
        # web node's clock and could lose to a Paxos write stamped later.
        await bounded(
            [self._db.run("delete_window", (gid, p), self._levels.meta, SERIAL) for p in partitions]
        )


def _trace(
    gid: uuid.UUID,
    partition: int,
    stored: Stored,
    blob: bytes,
    writer: uuid.UUID,
    outcome: object,
    error: BaseException | None,
    hosts: tuple[str, ...],
    found: Stored | None,
    settle_error: BaseException | None = None,
) -> None:
    """Trace one compare-and-set: the versions, the outcome, the keys it leased."""
    before, after = w.load(stored.blob), w.load(blob)
    start = before.start
    # Leased by this write: a token it handed out (at_most_once's leases may already be
    # behind the new start, remembered in ``recent``).
    tokens = {(r.ts, r.tail, r.token) for r in after.records}
    tokens |= {(ts, tail, token) for ts, tail, token, _ in w.remembered(after)}
    leased = sorted(
        f"{ts}:{tail.hex()}" for ts, tail, token in tokens if token >= before.next_token
    )
    trace.trace(
        "cas",
        gid=str(gid),
        p=partition,
        version=stored.version,
        from_writer=str(stored.writer),
        writer=str(writer),
        outcome=outcome,
        error=None if error is None else f"{error} <- {error.__cause__!r}",
        hosts=list(hosts),
        found=None if found is None else [found.version, str(found.writer)],
        settle_error=None if settle_error is None else str(settle_error),
        start=None if start is None else f"{start.ts}:{start.tail.hex()}",
        new_start=None if after.start is None else f"{after.start.ts}:{after.start_tail.hex()}",
        leased=leased,
        ack_count=[before.counters.acknowledged, after.counters.acknowledged],
    )
