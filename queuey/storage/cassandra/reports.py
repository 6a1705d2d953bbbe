"""The state of a Cassandra group: each partition's window tidied, then counted.

Reading a group's state first tidies each window as a claim would, without
leasing (vanished leases counted, dead ones buried, the start moved past done
messages; a compare-and-set only where something changed). Without a quorum
for that compare-and-set the window is reported as stored, so the state of a
weak queue's group stays readable at ONE. Then each partition's messages from
the start are counted, less those the window already holds as done.
"""

from __future__ import annotations

import uuid

from queuey.storage import window as w
from queuey.storage.base import StoreUnavailable
from queuey.storage.cassandra.dead_letters import DeadLetters
from queuey.storage.cassandra.group_rows import GroupRows
from queuey.storage.cassandra.messages import all_of, bounded
from queuey.storage.cassandra.scans import UNBOUNDED
from queuey.storage.cassandra.timeuuids import MIN_TAIL, hour, timeuuid
from queuey.storage.cassandra.windows import SERIAL, group_rules, now_ms
from queuey.storage.groups import Group, GroupReport, PartitionReport
from queuey.storage.keys import MessageKey


class Reports(GroupRows, DeadLetters):
    """A group's state report (a part of ``groups.Groups``)."""

    async def report(self, group: Group) -> GroupReport:
        partitions = range(1, group.queue.partitions + 1)
        _, found = await all_of(
            [self._alive(group), bounded([self._report_in(group, p) for p in partitions])]
        )
        counters = w.Counters()
        for _, window in found:
            for name in w.Counters.__struct_fields__:
                setattr(counters, name, getattr(counters, name) + getattr(window.counters, name))
        return GroupReport([report for report, _ in found], counters)

    async def _report_in(self, group: Group, partition: int) -> tuple[PartitionReport, w.Window]:
        queue = group.queue
        qid = uuid.UUID(queue.handle)
        level = self._levels.read[queue.settings.consistency]
        rules = group_rules(group)

        async def tidy(window: w.Window, attempt: int) -> w.Window:
            """What a claim would do first: count vanished leases, bury dead ones, move on."""
            scanned = await self._scan(queue, partition, window, 0)
            if scanned is not None:
                by_key = {m.key: m for m in scanned}
                doomed = w.tidy(window, list(by_key), rules, now_ms())
                await self._bury(group, window, partition, {k: by_key.get(k) for k in doomed})
            return window

        try:
            # Read at SERIAL: the tidy writes nothing when nothing changed, so the window
            # it starts from must be the latest committed one, not a replica's view.
            gid = uuid.UUID(group.handle)
            window = await self._change(
                group, partition, tidy, await self._read(gid, partition, SERIAL)
            )
        except StoreUnavailable:
            # No quorum for the compare-and-set: the state as stored, not tidied.
            window = w.load((await self._read(uuid.UUID(group.handle), partition, level)).blob)
        seen = w.state(window, partition, now_ms())
        done = w.done_keys(window)
        start = window.start
        count, stored, scanned = await all_of(
            [
                self._count_from(qid, partition, start, level),
                self._count_stored(qid, partition, [MessageKey(*k) for k in done], level),
                self._messages.read_range(
                    qid, partition, start, len(done) + 1, False, UNBOUNDED, level
                ),
            ]
        )
        keys = sorted(m.key for m in scanned if start is None or m.key >= start)
        oldest = next((k for k in keys if (k.ts, k.tail) not in done), None)
        report = PartitionReport(
            partition, start, seen.in_flight, count - stored, oldest, seen.consumers
        )
        return report, window

    async def _count_from(
        self, qid: uuid.UUID, partition: int, start: MessageKey | None, level: int
    ) -> int:
        """Unexpired messages of the partition at or after ``start``."""
        lower = MessageKey(0, MIN_TAIL) if start is None else start
        if not lower.tail:
            lower = MessageKey(lower.ts, MIN_TAIL)
        first = max(hour(lower.ts), 0)
        hours = [r.hour for r in await self._db.run("hours_from", (qid, partition, first), level)]
        counts = await bounded(
            [
                self._db.run("count_from", (qid, partition, h, timeuuid(lower)), level)
                if h == first
                else self._db.run("count", (qid, partition, h), level)
                for h in hours
            ]
        )
        return sum(rows[0][0] for rows in counts)

    async def _count_stored(
        self, qid: uuid.UUID, partition: int, keys: list[MessageKey], level: int
    ) -> int:
        found = await bounded(
            [self._db.run("exists", (qid, partition, hour(k.ts), timeuuid(k)), level) for k in keys]
        )
        return sum(bool(rows) for rows in found)
