"""Consumer groups on Cassandra (SPEC §6): group rows, and windows changed only by LWTs.

A group is a row of ``groups`` (partition: the queue incarnation, so a queue
created again sees none of the old groups); its ``gid`` names the group's
incarnation. Its delivery state is one ``storage.window.Window`` per queue
partition, a row of ``group_windows`` keyed by ``(gid, partition)``.

Every window change is a compare-and-set (:meth:`Groups._change`): read the
row, apply ``storage.window`` in memory, write it back with ``UPDATE ... IF
version = ?`` (``INSERT ... IF NOT EXISTS`` for a first window); a lost race
reads again at SERIAL and applies again, at most :data:`ATTEMPTS` times, then
StoreUnavailable. So a message is never leased twice at once. A write whose
outcome the driver cannot tell (a Paxos timeout) is settled by a SERIAL read
looking for the write's own ``writer`` id. The Paxos phase runs at SERIAL
for every queue (LOCAL_SERIAL would let two data centres lease one message),
the commit and plain reads at the queue's levels. Lease times are judged by
the web node's clock.

Claims scan from the window's start with the message store's range reads,
hiding messages younger than the settle delay (an id committed late on
another node is not skipped). Expired messages are invisible (TTL): a window
counts only those it had leased as expired.

Dead letters are posted before the window change that marks them dead, with
an idempotency key of (group, partition, seek epoch, message): a change
applied again after a lost race posts nothing twice.

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

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from cassandra import ConsistencyLevel

from queuey.storage import window as w
from queuey.storage.base import (
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueChanged,
    QueueNotFound,
    StoreUnavailable,
)
from queuey.storage.cassandra.messages import Messages, all_of
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.timeuuids import MAX_TAIL, MIN_TAIL, hour, timeuuid
from queuey.storage.groups import (
    DEAD_LETTER_TTL,
    Action,
    Delivery,
    Group,
    GroupNotFound,
    GroupReport,
    GroupSettings,
    PartitionReport,
    Position,
    Settled,
)
from queuey.storage.keys import MAX_TICKS, MessageKey, now_ticks

T = TypeVar("T")
#: Compare-and-set rounds of one window change before it gives up (StoreUnavailable).
ATTEMPTS = 32
#: Seconds of the longest pause between two rounds grows by this much each round.
BACKOFF = 0.005
#: Statements one call runs at once when it runs one per partition or per message.
FAN_OUT = 32
#: The guard of an ack-and-publish lasts this many request timeouts (a publish's worst case).
GUARD_TIMEOUTS = 6
SERIAL = ConsistencyLevel.SERIAL
#: No upper bound for a range read.
UNBOUNDED = MessageKey(MAX_TICKS, MAX_TAIL)
_EMPTY = w.dump(w.load(None))

Post = Callable[[Queue, Sequence[NewMessage]], Awaitable[list[Posted]]]
Apply = Callable[[w.Window, int], Awaitable[T]]


class Stored(NamedTuple):
    """A window row as read: ``version`` 0 when there is none yet."""

    version: int
    blob: bytes | None
    writer: uuid.UUID | None


class Peek(NamedTuple):
    """A partition read for a claim: its window row, its messages from the start, any work."""

    stored: Stored
    messages: list[Message]
    busy: bool


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def bounded(calls: Sequence[Awaitable[T]], limit: int = FAN_OUT) -> list[T]:
    """Await every call, at most ``limit`` at a time; then raise the first failure, if any."""
    gate = asyncio.Semaphore(limit)

    async def run(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await all_of([run(call) for call in calls])


def _group(queue: Queue, row: Any) -> Group:
    settings = GroupSettings(
        row.guarantee, row.lease_seconds, row.max_deliveries, row.dead_letter_queue, row.ordered
    )
    return Group(queue, row.name, settings, row.created, str(row.gid))


def _rules(group: Group, max_in_flight: int = 0) -> w.Rules:
    s = group.settings
    return w.Rules(s.guarantee, s.lease_seconds * 1000, s.max_deliveries, s.ordered, max_in_flight)


def _dead_key(group: Group, partition: int, epoch: int, key: MessageKey) -> str:
    """The idempotency key of a dead letter: one post per message and seek epoch."""
    return f"dead:{group.handle}:{partition}:{epoch}:{key.ts:x}:{key.tail.hex()}"


def _by_partition(receipts: Sequence[w.Receipt]) -> dict[int, list[w.Receipt]]:
    found: dict[int, list[w.Receipt]] = {}
    for receipt in receipts:
        found.setdefault(receipt.partition, []).append(receipt)
    return found


class Groups:
    """The consumer groups of every queue, on one connection.

    ``post``: the store's ``post_messages`` (checks the queue, idempotency
    keys); ``settle``: the settle delay in seconds of a consistency level.
    """

    def __init__(
        self,
        db: Connection,
        queues: Queues,
        messages: Messages,
        *,
        namespace: str,
        post: Post,
        settle: Callable[[str], float],
    ) -> None:
        self._db = db
        self._levels = db.levels
        self._queues = queues
        self._messages = messages
        self._post = post
        self._settle = settle
        self._secret_name = f"receipts/{namespace}"
        self._secret: bytes | None = None

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

    async def _drop_windows(self, gid: uuid.UUID, partitions: Iterable[int]) -> None:
        # Conditional, as every other write of a window: a plain delete takes the
        # web node's clock and could lose to a Paxos write stamped later.
        await bounded(
            [self._db.run("delete_window", (gid, p), self._levels.meta, SERIAL) for p in partitions]
        )

    async def _current(self, queue: Queue) -> Queue:
        current = await self._queues.get(queue.app, queue.name)
        if current is None or current.handle != queue.handle:
            raise QueueNotFound(f"queue {queue.name!r} was deleted")
        return current

    async def _alive(self, group: Group) -> None:
        rows = await self._db.meta("get_group", (uuid.UUID(group.queue.handle), group.name))
        if not rows or str(rows[0].gid) != group.handle:
            raise GroupNotFound(group.name)

    # -- windows: read, compare-and-set ----------------------------------------------

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
        except StoreUnavailable:
            # Timed out in Paxos: the outcome is unknown until a serial read settles it.
            found = await self._read(gid, partition, SERIAL)
            return found.writer == writer
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

    # -- messages ----------------------------------------------------------------------

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
            level,
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

    async def _bury(
        self,
        group: Group,
        window: w.Window,
        partition: int,
        doomed: dict[MessageKey, Message | None],
    ) -> None:
        """Post messages that reached max_deliveries to the dead letter queue, or drop them."""
        if not doomed:
            return
        found = {key: m for key, m in doomed.items() if m is not None}
        lettered = 0
        if group.settings.dead_letter_queue and found:
            lettered = await self._letter(group, window.epoch, partition, found)
        w.dead(window, lettered, lettered=True)
        w.dead(window, len(doomed) - lettered, lettered=False)

    async def _letter(
        self, group: Group, epoch: int, partition: int, found: dict[MessageKey, Message]
    ) -> int:
        name = group.settings.dead_letter_queue
        assert name is not None
        for _ in range(2):
            target = await self._queues.get(group.queue.app, name)
            if target is None:
                return 0
            letters = [
                NewMessage(
                    m.body,
                    m.content_type,
                    DEAD_LETTER_TTL,
                    random.randint(1, target.partitions),
                    _dead_key(group, partition, epoch, key),
                )
                for key, m in found.items()
            ]
            try:
                await self._post(target, letters)
            except QueueNotFound:
                return 0
            except QueueChanged:
                continue
            return len(letters)
        raise StoreUnavailable("the dead letter queue kept changing; try again")

    # -- claims ----------------------------------------------------------------------------

    async def claim(
        self,
        group: Group,
        partitions: Sequence[int],
        limit: int,
        consumer: str | None,
        max_in_flight: int,
    ) -> list[Delivery]:
        """Read every partition at once, then lease in those with work, one after another."""
        rules = _rules(group, max_in_flight)
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

    # -- acknowledge, release, extend --------------------------------------------------------

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
        rules = _rules(group)
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
        rules = _rules(group)
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
        rules = _rules(group)
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

    # -- seek and report ----------------------------------------------------------------------

    async def seek(self, group: Group, partitions: Sequence[int], to: Position) -> None:
        await self._alive(group)

        async def one(partition: int) -> None:
            position = await self._position(group.queue, partition, to)

            async def apply(window: w.Window, attempt: int) -> None:
                w.seek(window, position)

            await self._change(group, partition, apply)

        await bounded([one(p) for p in partitions])

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
        rules = _rules(group)

        async def tidy(window: w.Window, attempt: int) -> w.Window:
            """What a claim would do first: count vanished leases, bury dead ones, move on."""
            scanned = await self._scan(queue, partition, window, 0)
            if scanned is not None:
                by_key = {m.key: m for m in scanned}
                doomed = w.tidy(window, list(by_key), rules, now_ms())
                await self._bury(group, window, partition, {k: by_key.get(k) for k in doomed})
            return window

        try:
            window = await self._change(group, partition, tidy)
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
