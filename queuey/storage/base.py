"""The storage contract every backend implements.

The domain layer talks to storage only through :class:`Storage`. A backend
knows nothing of HTTP, keys or access rules; it stores queues and messages
and keeps the ordering, durability and error promises written here and on
each method. ``tests/test_storage_contract.py`` checks them on every backend.

Ordering
    Within a partition messages are ordered by :class:`MessageKey`
    ``(ts, tail)``. Keys a backend makes itself (``post_messages``) strictly
    increase in the order the writes become visible to readers on that
    backend's own terms: on SQLite in commit order (so a ``since`` reader never
    skips one), on Cassandra per web node, with the settle delay covering the
    rest (see ``settle_seconds``). They keep increasing when the wall clock
    stands still or steps back.

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
    A backend raises :class:`StoreUnavailable` when the store cannot answer
    or cannot take a write: unreachable, too few replicas, a timeout, a locked
    or broken file, a value the store cannot hold (a ``str`` that cannot be
    encoded as UTF-8, a TTL beyond the store's limit). It never lets a
    driver's or ``sqlite3``'s exception, nor an encoding error, escape. After
    a ``StoreUnavailable`` from a write the outcome is unknown unless the
    method says more. :class:`QueueNotFound` and :class:`QueueChanged` refuse
    a write before it stores anything. Nothing else is raised for well-formed
    calls.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from queuey.storage.keys import MessageKey

CONSISTENCY_LEVELS = ("weak", "strong", "very_strong")
QUEUE_TYPES = ("user", "public")


class StorageError(Exception):
    """What storage raises; core maps each kind into the error catalog (``core.errors``).

    StorageError
    ├── StoreUnavailable   the store cannot answer now (503 StorageUnavailable)
    ├── QueueNotFound      the queue was deleted meanwhile (404 InvalidQueueName)
    └── QueueChanged       the caller's copy of the queue is stale (read again, retry)
    """


class StoreUnavailable(StorageError):
    """The store cannot serve the request right now (answered 503).

    From a write: its outcome is unknown, except where the method says more.
    """


class QueueNotFound(StorageError):
    """The queue was deleted while the call was under way (answered 404); nothing was written."""


class QueueChanged(StorageError):
    """The queue's partitions or consistency differ from the caller's copy; nothing was written.

    The caller reads the queue again and retries with the fresh copy.
    """


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
    """A message to store. ``ttl`` is in seconds from the time of the write.

    ``idempotency_key``: 1 to 128 visible ASCII characters naming the message
    for this queue, or None (see ``Storage.post_messages``).
    """

    body: str
    content_type: str
    ttl: int
    partition: int
    idempotency_key: str | None = None


class Posted(NamedTuple):
    """Where ``post_messages`` put a message (or, for a repeated idempotency key, had put it)."""

    key: MessageKey
    partition: int


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message as read back."""

    key: MessageKey
    partition: int
    body: str
    content_type: str


class QueueMark(NamedTuple):
    """Where a queue stands for readers that wait for its messages (:meth:`Storage.marks`).

    ``version`` is only compared, with ``==``, to an earlier mark of the same
    queue incarnation. ``newest``: the key of the newest message written as
    far as this mark knows (None: none or unknown); a reader whose store
    hides messages younger than the settle delay looks again once that
    delay has passed after ``newest``. ``gone``: the incarnation was deleted.
    ``ordered``: ``newest`` follows the order in which writes commit, across
    every store sharing the data (SQLite's file-wide key clock), so a mark
    whose ``newest`` is no newer than a key a store stamped moved for that
    write or for one committed before it.
    """

    version: Hashable
    newest: MessageKey | None = None
    gone: bool = False
    ordered: bool = False


class Storage(Protocol):
    """An async message store.

    Every method may raise :class:`StoreUnavailable` (see the module's
    "Errors"); that is left unsaid below. ``Queue`` arguments are copies the
    caller read earlier, possibly from a cache: methods that write messages
    check them against the stored queue first. Reads of messages take the
    copy's handle, partitions and consistency as given.
    """

    async def start(self) -> None:
        """Connect, create or migrate the schema, start background work.

        Raises StoreUnavailable when the store cannot be reached or (SQLite)
        the file's schema is newer than this code. Call before anything else.
        """

    async def close(self) -> None:
        """Stop background work and release connections. Idempotent.

        Writes already submitted finish first (SQLite) or are abandoned with
        the connection (Cassandra). Every later call raises StoreUnavailable.
        """

    async def ping(self) -> None:
        """Return if the store answers a trivial read (SQLite: and its writer runs).

        Raises StoreUnavailable otherwise.
        """

    def settle_seconds(self, consistency: str) -> float:
        """How long a range read hides new messages of a queue of this level.

        0 where keys are made in commit order (SQLite). On Cassandra keys made
        by different web nodes may commit out of order; hiding messages younger
        than this delay keeps a ``since`` reader from skipping a late one.
        Never raises.
        """

    async def create_queue(
        self, app: str, name: str, settings: QueueSettings
    ) -> tuple[Queue, bool]:
        """Create a queue; if one of that name exists, change nothing.

        Returns the stored queue (the existing one, with its own settings, if
        the name was taken) and whether this call created it. Two concurrent
        calls for one name create one queue: exactly one of them gets True.
        A new queue has a new ``handle``, also under a deleted queue's name.
        """

    async def get_queue(self, app: str, name: str) -> Queue | None:
        """The queue as stored now, or None when there is none (or it was deleted)."""

    async def update_queue(self, queue: Queue, settings: QueueSettings) -> Queue:
        """Replace the settings of this incarnation of the queue; return it as stored.

        The partition count never shrinks: the stored count is the larger of
        the old and the asked one, also under concurrent updates. Raises
        :class:`QueueNotFound` if the queue was deleted (or created again)
        since ``queue`` was read.
        """

    async def delete_queue(self, queue: Queue) -> None:
        """Remove this incarnation of the queue (``queue.handle``) and its messages.

        ``get_queue`` and ``list_queues`` miss it from now on, writes through
        any copy raise :class:`QueueNotFound`, and a queue created again under
        the name starts empty. The messages are reclaimed in the background
        (until then a read through an old copy may still find them); this call
        does not take time proportional to their number. A copy of an
        incarnation that is already gone is no error and touches nothing.
        """

    async def list_queues(self, app: str, start: str | None, limit: int) -> list[Queue]:
        """Up to ``limit`` queues of ``app`` whose names are >= ``start``, in binary name order.

        ``start`` None or "" starts at the first. A page that ends with name N
        continues at N + "\0" with nothing skipped or repeated (queues created
        or deleted meanwhile may or may not show).
        """

    async def count_messages(self, queue: Queue) -> int:
        """The number of unexpired messages in all partitions of this incarnation."""

    async def post_messages(self, queue: Queue, messages: Sequence[NewMessage]) -> list[Posted]:
        """Store messages under keys the backend makes; return where each went, in request order.

        Each message goes to its ``partition`` (1..``queue.partitions``) with
        its expiry ``ttl`` seconds from now. The keys of the messages this call
        stores are new, strictly increasing in request order, above every key
        this backend made before (see the module's "Ordering"), with timestamps
        near the current time (never behind a key made earlier, even if the
        clock stepped back). Once this returns, the messages are as durable as
        the queue's consistency promises and visible to reads (after the settle
        delay).

        Idempotency keys: a message whose ``idempotency_key`` was already used
        on this incarnation of the queue within the store's idempotency window
        (``idempotency_window`` seconds, counted from the first post that used
        it) is not stored again: its ``Posted`` is the first one's (key and
        partition), whatever its body, TTL or partition, also when that
        message has since expired or been deleted. A key given twice in one
        call is one message: the first item is stored, and both are answered
        with its ``Posted``. This holds for calls racing each other through
        any number of stores sharing the data (processes on one SQLite file,
        web nodes on one Cassandra cluster: one of them stores the message,
        all get the same answer). Keys are compared byte for byte and belong
        to one queue incarnation: a queue created again under a deleted one's
        name knows none. After the window the key is forgotten and a message
        with it is new.

        Raises :class:`QueueNotFound` if the queue was deleted (or created
        again) since ``queue`` was read, and :class:`QueueChanged` if its
        partition count or consistency is no longer that of ``queue`` (the
        write must honour the stored settings); then nothing was stored and
        no key was used.

        A :class:`StoreUnavailable` leaves the outcome unknown.

        SQLite: nothing of the call was stored and no key was used (one
        transaction with the messages).

        Cassandra: nothing was stored when a value could not be encoded (every
        value is encoded before anything is sent). Otherwise the call's
        idempotency keys may have been recorded, each with the key and
        partition its message gets, and messages may be stored: those that
        fall in one Cassandra partition (one queue partition, one hour) within
        ``batch_bytes`` go in one atomic batch, and messages over several
        partitions within ``logged_batch_bytes`` in one LOGGED batch: all of
        them are stored or, as far as Cassandra can say, none. Larger calls go
        in several batches, each all or nothing, so some of the call's
        messages may be stored. Calling again with the same idempotency keys
        completes the call: every message with a key ends stored exactly once,
        under the key recorded the first time (which may lie behind readers
        that already paged past its time, as with ``put_messages``), and the
        answer is that first one. A message without a key may end stored twice.
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
        tick. ``since`` None scans from the oldest (ascending) or the newest
        (descending). ``limit`` keeps the first ones in scan order. Messages
        younger than the queue's settle delay are hidden. A partition without
        such messages gives [].
        """

    async def get_messages(
        self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]
    ) -> list[Message]:
        """The unexpired messages among ``(partition, key)`` pairs, in the order asked.

        Absent or expired ones are left out (no error); the settle delay does
        not apply.
        """

    async def put_messages(
        self,
        queue: Queue,
        keys: Sequence[tuple[int, MessageKey]],
        body: str,
        content_type: str,
        ttl: int,
    ) -> None:
        """Create or overwrite each ``(partition, key)`` with this body; the expiry restarts.

        Raises :class:`QueueNotFound` and :class:`QueueChanged` as
        ``post_messages``, storing nothing. A :class:`StoreUnavailable` means
        what it means there: on SQLite nothing was written; on Cassandra the
        same batches apply, so a large call may be written in part.
        """

    async def delete_messages(self, queue: Queue, keys: Sequence[tuple[int, MessageKey]]) -> None:
        """Delete these messages; absent ones are no error.

        Does not check ``queue`` against the stored one: deleting messages of
        a deleted queue is deleting what is already gone. After a
        :class:`StoreUnavailable` some of them may be deleted; calling again
        finishes the job.
        """

    async def marks(self, queues: Sequence[Queue]) -> list[QueueMark]:
        """A change mark of each queue, in the order given: how waiting readers hear of writes.

        Held range reads, waiting claims and event streams of one process
        share one poll of this method (``core.waiters``), at most every 100 ms
        per waited queue, to hear of writes made through *other* stores
        sharing the data (processes on one SQLite file, web nodes on one
        cluster); writes through this store wake them without it.

        ``version`` differs from that of every earlier mark of the queue once
        a message was written to it through any store sharing the data since
        that mark was taken: posted (``post_messages``), created or
        overwritten (``put_messages``), or copied into it (dead letters,
        acknowledge-and-publish). It may also differ without such a write (a
        spurious change costs the reader one look). Deleting or expiring
        messages need not change it. ``gone`` is true once the incarnation
        was deleted (``get_queue`` no longer returns it); a queue created
        again under the name has another handle, so the old one stays gone.
        ``newest``, when given, has a timestamp no earlier than that of the
        newest message posted before the mark was taken.

        Cheap, and meant to be called often: SQLite answers from memory while
        no connection committed to the file (``PRAGMA data_version``), else
        with one indexed read for every queue asked (``sqlite/marks.py``);
        Cassandra reads, per queue, the queue's row, its overwrite mark and
        the newest key of each partition's current hour (``cassandra/marks.py``).
        A queue unknown to the store (never created) is ``gone``.
        """
