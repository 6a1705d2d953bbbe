"""Claims and seeks of Cassandra groups: leasing messages, moving a window's start.

A claim reads every asked partition at once (its window, and the settled
messages from its start, ``scans.py``), then leases by compare-and-set
(``windows.py``) only in the partitions with work, one after another from a
random one until ``limit``. Messages that reach max_deliveries on the way are
buried (``dead_letters.py``). A seek moves each window's start, one
compare-and-set per partition.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from queuey.storage import window as w
from queuey.storage.base import Message
from queuey.storage.cassandra.dead_letters import DeadLetters
from queuey.storage.cassandra.group_rows import GroupRows
from queuey.storage.cassandra.messages import all_of, bounded
from queuey.storage.cassandra.windows import Stored, group_rules, now_ms
from queuey.storage.groups import Delivery, Group, Position


class Peek(NamedTuple):
    """A partition read for a claim: its window row, its messages from the start, any work."""

    stored: Stored
    messages: list[Message]
    busy: bool


class Claims(GroupRows, DeadLetters):
    """Claiming and seeking (a part of ``groups.Groups``)."""

    async def claim(
        self,
        group: Group,
        partitions: Sequence[int],
        limit: int,
        consumer: str | None,
        max_in_flight: int,
    ) -> list[Delivery]:
        """Read every partition at once, then lease in those with work, one after another."""
        rules = group_rules(group, max_in_flight)
        order = list(partitions)
        if order:  # a fair order: begin at a random partition
            turn = random.randrange(len(order))
            order = order[turn:] + order[:turn]
        _, peeks = await all_of(
            [
                self._alive(group),
                bounded([self._peek(group, p, limit, consumer, rules) for p in order]),
            ]
        )
        found: list[Delivery] = []
        for partition, first in zip(order, peeks, strict=True):
            if len(found) >= limit:
                break
            if first.busy:
                found += await self._claim_in(
                    group, partition, limit - len(found), consumer, rules, first
                )
        return found

    async def _peek(
        self, group: Group, partition: int, limit: int, consumer: str | None, rules: w.Rules
    ) -> Peek:
        level = self._levels.read[group.queue.settings.consistency]
        stored = await self._read(uuid.UUID(group.handle), partition, level)
        window = w.load(stored.blob)
        messages = await self._scan(group.queue, partition, window, limit)
        if messages is None:
            return Peek(stored, [], False)
        before = w.dump(window)
        keys = [m.key for m in messages]
        w.claim(window, partition, keys, rules, now_ms(), limit, consumer)
        return Peek(stored, messages, w.dump(window) != before)

    async def _claim_in(
        self,
        group: Group,
        partition: int,
        limit: int,
        consumer: str | None,
        rules: w.Rules,
        first: Peek,
    ) -> list[Delivery]:
        async def apply(window: w.Window, attempt: int) -> list[Delivery]:
            scanned = first.messages if attempt == 0 else None
            if scanned is None:
                scanned = await self._scan(group.queue, partition, window, limit)
                if scanned is None:
                    return []
            by_key = {m.key: m for m in scanned}
            leased, doomed = w.claim(
                window, partition, list(by_key), rules, now_ms(), limit, consumer
            )
            await self._bury(group, window, partition, {k: by_key.get(k) for k in doomed})
            return [Delivery(by_key[c.key], c.receipt, c.deliveries) for c in leased]

        return await self._change(group, partition, apply, first.stored)

    async def seek(self, group: Group, partitions: Sequence[int], to: Position) -> None:
        await self._alive(group)

        async def one(partition: int) -> None:
            position = await self._position(group.queue, partition, to)

            async def apply(window: w.Window, attempt: int) -> None:
                w.seek(window, position)

            await self._change(group, partition, apply)

        await bounded([one(p) for p in partitions])
