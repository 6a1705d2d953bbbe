"""Group rows on Cassandra: create, read, list, update, delete; and the receipt secret.

A group is a row of ``groups`` (partition: the queue incarnation, so a queue
created again sees none of the old groups); its ``gid`` names the group's
incarnation, and keys its windows (``windows.py``). Rows are written by LWT
at the metadata level. A group is created windows first (under a gid no one
knows yet), then its row; deleted row first, then its windows.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from queuey.storage import window as w
from queuey.storage.base import Queue, QueueNotFound
from queuey.storage.cassandra.messages import all_of, bounded
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.scans import Scans
from queuey.storage.cassandra.windows import SERIAL, Stored, Windows
from queuey.storage.groups import Group, GroupNotFound, GroupSettings, Position


def _group(queue: Queue, row: Any) -> Group:
    settings = GroupSettings(
        row.guarantee, row.lease_seconds, row.max_deliveries, row.dead_letter_queue, row.ordered
    )
    return Group(queue, row.name, settings, row.created, str(row.gid))


class GroupRows(Windows, Scans):
    """The rows of groups and the namespace's receipt secret (a part of ``groups.Groups``)."""

    _queues: Queues
    _secret_name: str
    _secret: bytes | None

    # -- the receipt secret ------------------------------------------------------

    async def secret(self) -> bytes:
        """The namespace's receipt secret: created once by whichever node asks first."""
        if self._secret is None:
            rows = await self._db.meta("secret", (self._secret_name,))
            if rows:
                value = rows[0].value
            else:
                candidate = os.urandom(32)
                rows = await self._db.run(
                    "create_secret", (self._secret_name, candidate), self._levels.meta, SERIAL
                )
                value = candidate if rows[0][0] else rows[0].value
            self._secret = bytes(value)
        return self._secret

    # -- group rows ----------------------------------------------------------------

    async def create(
        self, queue: Queue, name: str, settings: GroupSettings, start: Position
    ) -> tuple[Group, bool]:
        """Windows first (under a new gid no one knows yet), then the row ``IF NOT EXISTS``."""
        current = await self._current(queue)
        gid = uuid.uuid4()
        written: list[int] = []
        if start != "earliest":
            partitions = range(1, current.partitions + 1)
            positions = await bounded([self._position(current, p, start) for p in partitions])
            starts = {p: at for p, at in zip(partitions, positions, strict=True) if at is not None}
            written = list(starts)
            await bounded(
                [
                    self._write(gid, p, Stored(0, None, None), w.dump(w.load(None, at)), current)
                    for p, at in starts.items()
                ]
            )
        created = round(time.time(), 3)
        args = (
            uuid.UUID(queue.handle),
            name,
            gid,
            settings.guarantee,
            settings.lease_seconds,
            settings.max_deliveries,
            settings.dead_letter_queue,
            settings.ordered,
            created,
        )
        rows = await self._db.run("create_group", args, self._levels.meta, SERIAL)
        if not rows[0][0]:
            await self._drop_windows(gid, written)
            return _group(queue, rows[0]), False
        group = Group(queue, name, settings, created, str(gid))
        try:
            await self._current(queue)  # a queue deleted meanwhile may have missed this group
        except QueueNotFound:
            await self.delete(group)
            raise
        return group, True

    async def get(self, queue: Queue, name: str) -> Group | None:
        rows = await self._db.meta("get_group", (uuid.UUID(queue.handle), name))
        return _group(queue, rows[0]) if rows else None

    async def page(self, queue: Queue) -> list[Group]:
        rows = await self._db.meta("list_groups", (uuid.UUID(queue.handle),))
        return [_group(queue, row) for row in rows]

    async def update(self, group: Group, settings: GroupSettings) -> Group:
        args = (
            settings.guarantee,
            settings.lease_seconds,
            settings.max_deliveries,
            settings.dead_letter_queue,
            settings.ordered,
            uuid.UUID(group.queue.handle),
            group.name,
            uuid.UUID(group.handle),
        )
        rows = await self._db.run("update_group", args, self._levels.meta, SERIAL)
        if not rows[0][0]:
            raise GroupNotFound(group.name)
        return Group(group.queue, group.name, settings, group.created, group.handle)

    async def delete(self, group: Group) -> None:
        """The row (``IF gid``: never a newer incarnation), then its windows."""
        args = (uuid.UUID(group.queue.handle), group.name, uuid.UUID(group.handle))
        await self._db.run("delete_group", args, self._levels.meta, SERIAL)
        await self._drop_windows(uuid.UUID(group.handle), range(1, group.queue.partitions + 1))

    async def delete_of_queue(self, queue: Queue) -> None:
        """Remove the groups of a deleted queue incarnation (unreachable already: new qid)."""
        await all_of([self.delete(group) for group in await self.page(queue)])

    async def _current(self, queue: Queue) -> Queue:
        current = await self._queues.get(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            raise QueueNotFound(f"queue {queue.name!r} was deleted")
        return current

    async def _alive(self, group: Group) -> None:
        rows = await self._db.meta("get_group", (uuid.UUID(group.queue.handle), group.name))
        if not rows or str(rows[0].gid) != group.handle:
            raise GroupNotFound(group.name)
