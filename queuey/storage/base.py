"""The storage contract every backend implements.

The HTTP and domain layers talk to storage only through :class:`Storage`.
A backend knows nothing of HTTP, keys or access rules; it stores queues and
messages and keeps the ordering and durability promises written here.

Ordering
    Within a partition messages are ordered by :class:`MessageKey`
    ``(ts, tail)``. Keys a backend makes itself (``post_messages``) strictly
    increase in the order the writes become visible to readers on that
    backend's own terms: on SQLite in commit order (so a ``since`` reader never
    skips one), on Cassandra per web node, with the settle delay covering the
    rest (see ``settle_seconds``).

TTL
    Every message has an expiry; a message is visible while its expiry lies in
    the future. Expired messages vanish from every read at once and are
    reclaimed in the background.

Consistency
    ``Queue.consistency`` is ``weak``, ``strong`` or ``very_strong``. A write
    call returns only once the data is as durable as that level promises
    (SQLite: committed for weak, fsynced for the others; Cassandra: ONE,
    QUORUM, EACH_QUORUM).

Errors
    A backend raises :class:`StorageUnavailable` when the store cannot answer
    (unreachable, too few replicas, timeouts, a locked or broken file). It
    never lets a driver's exception escape. Nothing else is raised for
    well-formed calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from queuey.storage.keys import MessageKey

CONSISTENCY_LEVELS = ("weak", "strong", "very_strong")
QUEUE_TYPES = ("user", "public")


class StorageUnavailable(Exception):
    """The store cannot serve the request right now (answered 503)."""


class QueueNotFound(Exception):
    """The queue was deleted while the call was under way (answered 404)."""


class QueueChanged(Exception):
    """The queue's partitions or consistency differ from the caller's copy: read it again."""


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What a caller may set on a queue."""

    partitions: int = 1
    type: str = "user"
    consistency: str = "strong"
    principles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Queue:
    """A stored queue.

    ``handle`` identifies this incarnation of the queue inside the backend: a
    queue deleted and created again under the same name gets a new handle, so
    messages of the old one can never reappear while they are reclaimed.
    """

    app: str
    name: str
    settings: QueueSettings
    created: float
    handle: str = field(compare=False)

    @property
    def partitions(self) -> int:
        return self.settings.partitions


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store. ``ttl`` is in seconds from the time of the write."""

    body: str
    content_type: str
    ttl: int
    partition: int


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message as read back."""

    key: MessageKey
    partition: int
    body: str
    content_type: str


class Storage(Protocol):
    """An async message store. All methods may raise :class:`StorageUnavailable`."""

    async def start(self) -> None:
        """Connect, create or migrate the schema, start background work."""

    async def close(self) -> None:
        """Stop background work and release connections. Idempotent."""

    async def ping(self) -> None:
        """Return if the store answers a trivial read (and can write); raise otherwise."""

    def settle_seconds(self, consistency: str) -> float:
        """How long a range read hides new messages of a queue of this level.

        0 where keys are made in commit order (SQLite). On Cassandra keys made
        by different web nodes may commit out of order; hiding messages younger
        than this delay keeps a ``since`` reader from skipping a late one.
        """

    async def create_queue(
        self, app: str, name: str, settings: QueueSettings
    ) -> tuple[Queue, bool]:
        """Create a queue; if it exists, change nothing.

        Returns the stored queue and whether this call created it.
        """

    async def get_queue(self, app: str, name: str) -> Queue | None:
        """The queue, or None when it does not exist (or was deleted)."""

    async def update_queue(self, queue: Queue, settings: QueueSettings) -> Queue:
        """Replace a queue's settings; the partition count never shrinks.

        Raises :class:`QueueNotFound` if the queue was deleted meanwhile.
        """

    async def delete_queue(self, queue: Queue) -> None:
        """Remove the queue and its messages: gone for every reader at once.

        The space may be reclaimed in the background; this call must not take
        time proportional to the number of messages.
        """

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        """Up to ``limit`` queues of ``app`` whose names are >= ``start``, in binary name order."""

    async def count_messages(self, queue: Queue) -> int:
        """The number of unexpired messages in all partitions."""

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[MessageKey]:
        """Store messages all or nothing with keys the backend makes; return the keys in order.

        Raises :class:`QueueNotFound` if the queue was deleted meanwhile, and
        :class:`QueueChanged` (storing nothing) if its partition count or
        consistency is no longer that of ``queue``: callers may hold a cached
        copy, and the write must honour the stored settings.
        """

    async def read_range(
        self,
        queue: Queue,
        partition: int,
        since: MessageKey | None,
        limit: int,
        descending: bool,
    ) -> list[Message]:
        """Up to ``limit`` unexpired messages of one partition, scanning from ``since``.

        Ascending: keys >= ``since``, oldest first. Descending: keys <= ``since``,
        newest first (a reader pages backwards with the last key it got). A
        ``since`` with an empty tail is a pure time bound covering its whole
        tick. ``limit`` keeps the first ones in scan order. Messages younger
        than the queue's settle delay are hidden.
        """

    async def get_messages(
        self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]
    ) -> list[Message]:
        """The unexpired messages among ``(partition, key)`` pairs, in the order asked."""

    async def put_messages(
        self,
        queue: Queue,
        keys: Sequence[tuple[int, MessageKey]],
        body: str,
        content_type: str,
        ttl: int,
    ) -> None:
        """Create or overwrite each ``(partition, key)`` with this body; the expiry restarts.

        Raises :class:`QueueNotFound` and :class:`QueueChanged` as ``post_messages``.
        """

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        """Delete these messages; absent ones are no error."""
