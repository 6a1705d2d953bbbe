"""Settling receipts of Cassandra groups: acknowledge, release, extend, acknowledge-and-publish.

Each partition's receipts are settled by one compare-and-set of its window
(``windows.py``); messages that reach max_deliveries on a release are buried
(``dead_letters.py``).

Acknowledge and publish (docs/groups-cassandra.md says what holds when a node
dies midway): (1) the targets are checked and every receipt judged on windows
read at SERIAL — any lost: nothing is written; (2) guard: by compare-and-set,
each receipt's lease is extended to at least :data:`GUARD_TIMEOUTS` request
timeouts, so no one else can lease the message meanwhile; (3) the messages
are posted with their idempotency keys (derived from the receipts by core);
(4) the receipts are acknowledged. A 200 is all of it; a failure after (2)
is completed by the same request sent again within the guard, which
publishes nothing new; without that retry the message is delivered again and
its outputs may be stored twice, never lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from queuey.storage import window as w
from queuey.storage.base import Message, NewMessage, Posted, Queue
from queuey.storage.cassandra.dead_letters import DeadLetters
from queuey.storage.cassandra.group_rows import GroupRows
from queuey.storage.cassandra.messages import all_of, bounded
from queuey.storage.cassandra.windows import SERIAL, Stored, group_rules, now_ms
from queuey.storage.groups import Action, Group, Settled
from queuey.storage.keys import MessageKey

#: The guard of an ack-and-publish lasts this many request timeouts (a publish's worst case).
GUARD_TIMEOUTS = 6


def _by_partition(receipts: Sequence[w.Receipt]) -> dict[int, list[w.Receipt]]:
    found: dict[int, list[w.Receipt]] = {}
    for receipt in receipts:
        found.setdefault(receipt.partition, []).append(receipt)
    return found


class Settling(GroupRows, DeadLetters):
    """Acknowledging, releasing, extending; with publishing (a part of ``groups.Groups``)."""

    async def settle(
        self,
        group: Group,
        action: Action,
        receipts: Sequence[w.Receipt],
        seconds: int,
        publish: Sequence[tuple[Queue, NewMessage]] = (),
    ) -> Settled:
        await self._alive(group)
        if publish:
            return await self._ack_and_publish(group, receipts, publish)
        parts = _by_partition(receipts)
        accepted: set[w.Receipt] = set()
        for done in await bounded(
            [self._settle_in(group, p, items, action, seconds) for p, items in parts.items()]
        ):
            accepted.update(done)
        return Settled(
            [r for r in receipts if r in accepted], [r for r in receipts if r not in accepted]
        )

    async def _settle_in(
        self, group: Group, partition: int, items: list[w.Receipt], action: Action, seconds: int
    ) -> list[w.Receipt]:
        rules = group_rules(group)
        qid = uuid.UUID(group.queue.handle)
        level = self._levels.read[group.queue.settings.consistency]

        async def apply(window: w.Window, attempt: int) -> list[w.Receipt]:
            accepted, _, doomed = w.settle(window, items, rules, now_ms(), action, seconds)
            if doomed:
                found = await self._messages.get(qid, [(partition, k) for k in doomed], level)
                by_key: dict[MessageKey, Message | None] = {m.key: m for m in found}
                await self._bury(group, window, partition, {k: by_key.get(k) for k in doomed})
            return accepted

        return await self._change(group, partition, apply)

    async def _ack_and_publish(
        self,
        group: Group,
        receipts: Sequence[w.Receipt],
        publish: Sequence[tuple[Queue, NewMessage]],
    ) -> Settled:
        """Check, guard the leases, publish, acknowledge (the module's steps 1-4)."""
        targets = {target.handle: target for target, _ in publish}
        await all_of([self._queues.check(target) for target in targets.values()])
        parts = _by_partition(receipts)
        gid = uuid.UUID(group.handle)
        rules = group_rules(group)
        firsts = await bounded([self._read(gid, p, SERIAL) for p in parts])
        now = now_ms()
        lost: list[w.Receipt] = []
        for items, stored in zip(parts.values(), firsts, strict=True):
            lost += w.settle(w.load(stored.blob), items, rules, now, "ack")[1]
        if not lost:
            guarded = await bounded(
                [
                    self._guard(group, p, items, first)
                    for (p, items), first in zip(parts.items(), firsts, strict=True)
                ]
            )
            lost = [r for found in guarded for r in found]
        if lost:
            return Settled([], [r for r in receipts if r in set(lost)])
        published = await self._publish(publish)
        settled = await self.settle(group, "ack", receipts, 0)
        return Settled(settled.accepted, settled.lost, published)

    async def _guard(
        self, group: Group, partition: int, items: list[w.Receipt], first: Stored
    ) -> list[w.Receipt]:
        """Extend the receipts' leases over a publish; the receipts lost (then nothing done)."""
        rules = group_rules(group)
        seconds = int(GUARD_TIMEOUTS * self._db.request_timeout) + 1

        async def apply(window: w.Window, attempt: int) -> list[w.Receipt]:
            now = now_ms()
            lost = w.settle(w.load(w.dump(window)), items, rules, now, "ack")[1]
            if lost:
                return lost
            held = []
            for receipt in items:
                record = window.find(receipt.key)
                if (
                    record is not None
                    and record.state == w.LEASED
                    and record.token == receipt.token
                    and record.until < now + seconds * 1000
                ):
                    held.append(receipt)
            # Accepted by the rule that just accepted the ack (a live or, for
            # at_least_once, an expired lease still the message's own).
            w.settle(window, held, rules, now, "extend", seconds)
            return []

        return await self._change(group, partition, apply, first)

    async def _publish(self, publish: Sequence[tuple[Queue, NewMessage]]) -> list[Posted]:
        """Post each message to its queue, answers in request order."""
        by_target: dict[str, tuple[Queue, list[int]]] = {}
        for index, (target, _) in enumerate(publish):
            by_target.setdefault(target.handle, (target, []))[1].append(index)
        answers = await all_of(
            [
                self._post(target, [publish[i][1] for i in indexes])
                for target, indexes in by_target.values()
            ]
        )
        placed: dict[int, Posted] = {}
        for (_, indexes), posted in zip(by_target.values(), answers, strict=True):
            placed.update(zip(indexes, posted, strict=True))
        return [placed[i] for i in range(len(publish))]
