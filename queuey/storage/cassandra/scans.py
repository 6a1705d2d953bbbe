"""What a group's window sees of its queue partition: settled scans, start positions.

Claims scan from the window's start with the message store's range reads,
hiding messages younger than the settle delay (an id committed late on
another node is not skipped). Expired messages are invisible (TTL): a window
counts only those it had leased as expired.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from queuey.storage import window as w
from queuey.storage.base import Message, Queue
from queuey.storage.cassandra.messages import Messages
from queuey.storage.cassandra.session import Levels
from queuey.storage.cassandra.timeuuids import MAX_TAIL
from queuey.storage.groups import Position
from queuey.storage.keys import MAX_TICKS, MessageKey, now_ticks

#: No upper bound for a range read.
UNBOUNDED = MessageKey(MAX_TICKS, MAX_TAIL)


class Scans:
    """The messages of a window's partition, as claims see them (a part of ``groups.Groups``).

    ``_settle``: the settle delay in seconds of a consistency level.
    """

    _levels: Levels
    _messages: Messages
    _settle: Callable[[str], float]

    async def _scan(
        self, queue: Queue, partition: int, window: w.Window, limit: int
    ) -> list[Message] | None:
        """Settled messages from the window's start, ascending (None: wait, see below)."""
        settle = int(self._settle(queue.settings.consistency) * 10_000_000)
        newest = MessageKey(now_ticks() - settle, MAX_TAIL)
        level = self._levels.read[queue.settings.consistency]
        start = window.start
        found = await self._messages.read_range(
            uuid.UUID(queue.handle), partition, start, w.scan_size(window, limit), False, newest,
            level, settle,
        )  # fmt: skip
        # Cassandra orders a tick's tails signed, the window unsigned: use the window's order.
        found = sorted((m for m in found if start is None or m.key >= start), key=lambda m: m.key)
        if not found and any(record.key > newest for record in window.records):
            # Leased by a node whose clock is ahead (or the settle delay grew): an
            # empty scan would make the window forget those leases. Not yet.
            return None
        return found

    async def _position(self, queue: Queue, partition: int, to: Position) -> MessageKey | None:
        """Where a window begins for ``to``: None (the oldest message) or a key."""
        if to == "earliest":
            return None
        if to == "latest":
            level = self._levels.read[queue.settings.consistency]
            newest = await self._messages.read_range(
                uuid.UUID(queue.handle), partition, None, 1, True, UNBOUNDED, level
            )
            return w.successor(newest[0].key) if newest else None
        assert isinstance(to, MessageKey)
        return to
