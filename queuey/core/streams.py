"""Event streams (SPEC §7): where a stream starts, and its next messages merged by id.

A stream reads the partitions it streams from one position — a message id
and a partition — and hands out the messages after it in the order of
SPEC §1's ids, the same id in two partitions by partition number. One
position serves every partition because ids are one commit-ordered sequence
per SQLite file, and on Cassandra the settle delay covers late commits (as
it does for ``since`` readers): a message readable later never lies behind
one already sent. So an event's ``id`` alone resumes a stream with nothing
repeated and nothing missed (``Last-Event-ID``), across server restarts too.

Reads go through the stream's :class:`~queuey.core.waiters.Watch`, so streams
standing at the same place share one read per partition and wake-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from queuey.core import validation as v
from queuey.core.errors import QueueyError
from queuey.core.ids import is_hex_id, parse_id, parse_timestamp
from queuey.core.queues import raise_if
from queuey.core.waiters import Watch
from queuey.storage.base import Message, Queue, Storage
from queuey.storage.keys import MessageKey

__all__ = ["AFTER_ALL", "BATCH", "LAST_EVENT_ID", "Message", "Position", "Stream"]

#: Messages read per partition and look (at most SQLite's small read, done on the loop).
BATCH = 100
#: A position after every partition's message of its id (a resumed stream, the end).
AFTER_ALL = 2**31
#: The header a reconnecting EventSource sends (and the key of its 400).
LAST_EVENT_ID = "Last-Event-ID"


@dataclass(slots=True)
class Position:
    """After the message ``key`` of ``partition``: ``key`` None is before every message.

    ``partition`` 0 includes ``key`` itself in every partition (``since``);
    :data:`AFTER_ALL` excludes it from every partition (``Last-Event-ID``).
    """

    key: MessageKey | None
    partition: int = 0

    def before(self, key: MessageKey, partition: int) -> bool:
        """Is the message ``key`` of ``partition`` after this position?"""
        here = self.key
        return here is None or key > here or (key == here and partition > self.partition)


def _partitions(value: str | None, errors: v.Errors, default: Sequence[int]) -> list[int]:
    """``partitions`` as a range read takes it (SPEC §3), the stream's default when not given."""
    if not value:
        return list(default)
    found: dict[int, None] = {}
    for item in value.split(","):
        if item.strip():
            found[v.integer(item, "partitions", errors, 1, 0)] = None
    return list(found)


def _last_event_id(value: str, errors: v.Errors) -> MessageKey | None:
    if is_hex_id(value.strip()):
        try:
            return parse_id(value.strip())
        except QueueyError:  # a UUID of another version or variant, a time before 1970
            pass
    errors[LAST_EVENT_ID] = f'"{v.clipped(value)}" is not a message id'
    return None


class Stream:
    """One stream's partitions and position; :meth:`next` gives the messages that follow."""

    def __init__(
        self, storage: Storage, queue: Queue, partitions: Sequence[int], position: Position
    ) -> None:
        self.storage = storage
        self.queue = queue
        #: The partitions streamed (those the queue had when the stream started).
        self.partitions = [p for p in partitions if 1 <= p <= queue.partitions]
        self.position = position
        #: The last look stopped short of the end of some partition: look again at once.
        self.more = False

    @classmethod
    async def open(
        cls,
        storage: Storage,
        queue: Queue,
        query: Mapping[str, str],
        last_event_id: str | None,
        default: Sequence[int],
    ) -> Stream:
        """Validate a stream's request (400) and find where it starts.

        ``default``: the partitions streamed without ``partitions`` (all the
        queue has, or those a scoped token holds). The start: after
        ``last_event_id`` if given, else at ``since`` (inclusive), else just
        after the newest message readable now.
        """
        errors: v.Errors = {}
        partitions = _partitions(query.get("partitions"), errors, default)
        resume = _last_event_id(last_event_id, errors) if last_event_id else None
        since = query.get("since")
        start: MessageKey | None = None
        if since:
            if is_hex_id(since):
                start = parse_id(since)  # another version: 400 InvalidMessageID
            else:
                ticks = parse_timestamp(since, round_up=True)
                if ticks is None:
                    errors["since"] = f'"{v.clipped(since)}" is not a message id or a timestamp'
                else:
                    start = MessageKey(ticks, b"")
        raise_if(errors)
        stream = cls(storage, queue, partitions, Position(None))
        if resume is not None:
            stream.position = Position(resume, AFTER_ALL)
        elif start is not None:
            stream.position = Position(start, 0)
        else:
            stream.position = Position(await stream._newest(), AFTER_ALL)
        return stream

    async def _newest(self) -> MessageKey | None:
        """The newest readable message's key over the streamed partitions (None: none)."""
        newest: MessageKey | None = None
        for partition in self.partitions:
            found = await self.storage.read_range(self.queue, partition, None, 1, True)
            if found and (newest is None or found[0].key > newest):
                newest = found[0].key
        return newest

    async def next(self, watch: Watch) -> list[Message]:
        """The readable messages after the position, in order (at most :data:`BATCH` a partition).

        Moves the position past them. When a partition had more than a
        batch, only messages up to where every such partition was read are
        given (a later look gives the rest): :attr:`more` says so.
        """
        position = self.position
        since = position.key
        found: list[Message] = []
        bound: MessageKey | None = None
        for partition in self.partitions:

            async def fetch(partition: int = partition) -> list[Message]:
                return await self.storage.read_range(self.queue, partition, since, BATCH, False)

            # Streams at the same place share this read until the queue's next wake-up.
            batch = await watch.shared(("stream", partition, since), fetch)
            if len(batch) == BATCH and (bound is None or batch[-1].key < bound):
                bound = batch[-1].key
            found.extend(m for m in batch if position.before(m.key, partition))
        self.more = bound is not None
        if bound is not None:
            found = [m for m in found if m.key <= bound]
        found.sort(key=lambda m: (m.key, m.partition))
        if found:
            self.position = Position(found[-1].key, found[-1].partition)
        return found
