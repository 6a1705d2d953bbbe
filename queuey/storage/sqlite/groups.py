"""Consumer groups on SQLite: group rows, one window row per (group, partition).

Every change runs as one job of the writer (one transaction): it reads the
window, applies ``storage.window``, copies messages that reached
``max_deliveries`` to the dead letter queue, and writes the window back —
so the compare-and-set of the contract is the writer's serialised
transaction, also across processes sharing the file.

Claims scan from each window's frontier (``window.py``), not from its start:
the messages after every lease in flight. A PUT by id may store a message
behind it; :func:`rescan` notes where in the window's row, and the next load
lowers the frontier to it.

The writer keeps the windows decoded (:class:`Windows`): a busy window holds
a record per lease in flight, tens of kilobytes, and decoding it again for
every claim and acknowledgement cost as much as the rest of the claim. The
jobs of one transaction change a window in memory, and the transaction
writes it once, before its COMMIT. Each write stores a new random nonce
beside the window; a load whose row still has the nonce of the kept copy
uses it, so a write by another process sharing the file, or a rolled-back
transaction, is read from the row.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from queuey.storage import window as w
from queuey.storage.base import Message, NewMessage, Posted, Queue, QueueNotFound
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
from queuey.storage.keys import MessageKey
from queuey.storage.sqlite import messages as message_sql
from queuey.storage.sqlite import queues as queue_sql
from queuey.storage.sqlite.writer import Txn

_COLUMNS = "id, name, guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered, created"


def _group(queue: Queue, row: Sequence[Any]) -> Group:
    gid, name, guarantee, lease, most, dlq, ordered, created = row
    settings = GroupSettings(guarantee, lease, most, dlq, bool(ordered))
    return Group(queue, name, settings, created, str(gid))


def _queue_alive(conn: sqlite3.Connection, queue: Queue) -> None:
    if conn.execute("SELECT 1 FROM queues WHERE id = ?", (int(queue.handle),)).fetchone() is None:
        raise QueueNotFound(f"queue {queue.name!r} was deleted")


def _group_alive(conn: sqlite3.Connection, group: Group) -> None:
    # One statement for both rows: every claim and acknowledgement asks.
    queue, found = conn.execute(
        "SELECT (SELECT 1 FROM queues WHERE id = ?), (SELECT 1 FROM groups WHERE id = ?)",
        (int(group.queue.handle), int(group.handle)),
    ).fetchone()
    if queue is None:
        raise QueueNotFound(f"queue {group.queue.name!r} was deleted")
    if found is None:
        raise GroupNotFound(group.name)


def get(conn: sqlite3.Connection, queue: Queue, name: str) -> Group | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM groups WHERE qid = ? AND name = ?", (int(queue.handle), name)
    ).fetchone()
    return None if row is None else _group(queue, row)


def page(conn: sqlite3.Connection, queue: Queue) -> list[Group]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM groups WHERE qid = ? ORDER BY name", (int(queue.handle),)
    ).fetchall()
    return [_group(queue, row) for row in rows]


def _newest(conn: sqlite3.Connection, qid: int, partition: int) -> MessageKey | None:
    row = conn.execute(
        "SELECT ts, tail FROM messages WHERE qid = ? AND partition = ?"
        " ORDER BY ts DESC, tail DESC LIMIT 1",
        (qid, partition),
    ).fetchone()
    return None if row is None else MessageKey(row[0], row[1])


def _position(conn: sqlite3.Connection, qid: int, partition: int, to: Position) -> Any:
    """Where a window begins for ``to``: None (the oldest message) or a key."""
    if to == "earliest":
        return None
    if to == "latest":
        newest = _newest(conn, qid, partition)
        return None if newest is None else w.successor(newest)
    return to


def create(
    conn: sqlite3.Connection,
    windows: Windows,
    txn: Txn,
    queue: Queue,
    name: str,
    settings: GroupSettings,
    start: Position,
) -> tuple[Group, bool]:
    _queue_alive(conn, queue)
    found = get(conn, queue, name)
    if found is not None:
        return found, False
    qid = int(queue.handle)
    cursor = conn.execute(
        "INSERT INTO groups (qid, name, guarantee, lease_seconds, max_deliveries,"
        " dead_letter_queue, ordered, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            qid,
            name,
            settings.guarantee,
            settings.lease_seconds,
            settings.max_deliveries,
            settings.dead_letter_queue,
            int(settings.ordered),
            round(time.time(), 3),
        ),
    )
    gid = int(cursor.lastrowid or 0)
    # Partitions the queue has now begin at ``start``; ones it gains later at their beginning.
    for partition in range(1, queue.partitions + 1):
        begin = _position(conn, qid, partition, start)
        if begin is not None:
            windows.save(conn, txn, gid, partition, w.load(None, begin))
    group = get(conn, queue, name)
    assert group is not None
    return group, True


def update(conn: sqlite3.Connection, group: Group, settings: GroupSettings) -> Group:
    _group_alive(conn, group)
    conn.execute(
        "UPDATE groups SET guarantee = ?, lease_seconds = ?, max_deliveries = ?,"
        " dead_letter_queue = ?, ordered = ? WHERE id = ?",
        (
            settings.guarantee,
            settings.lease_seconds,
            settings.max_deliveries,
            settings.dead_letter_queue,
            int(settings.ordered),
            int(group.handle),
        ),
    )
    found = get(conn, group.queue, group.name)
    if found is None:
        raise GroupNotFound(group.name)
    return found


def delete(conn: sqlite3.Connection, group: Group) -> None:
    gid = int(group.handle)
    conn.execute("DELETE FROM group_windows WHERE gid = ?", (gid,))
    conn.execute("DELETE FROM groups WHERE id = ?", (gid,))


def delete_of_queue(conn: sqlite3.Connection, qid: int) -> None:
    """Remove every group of a deleted queue (run in the queue deletion's transaction)."""
    conn.execute(
        "DELETE FROM group_windows WHERE gid IN (SELECT id FROM groups WHERE qid = ?)", (qid,)
    )
    conn.execute("DELETE FROM groups WHERE qid = ?", (qid,))


class Windows:
    """The windows of one writer, decoded, by (group id, partition).

    Used by the writer thread only. A job loads a window, changes it in place
    and saves it; the save is gathered in memory, and the transaction writes
    each window its jobs changed once, before its COMMIT
    (``Txn.before_commit``): a busy window holds a record per lease in flight,
    tens of kilobytes, and a transaction of thirty claims and acknowledgements
    wrote it thirty times. A job of the same transaction loads the changed
    window, not the row. A job that changes a window must save it.

    The windows written are kept afterwards (``size`` of them, the least
    recently used go first), each with the random nonce its write stored beside
    it; a load whose row still has that nonce uses the kept copy. So a write by
    another process sharing the file, or a rolled-back transaction, is read
    from the row.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[int, int], tuple[int, w.Window]] = OrderedDict()
        self._txn: Txn | None = None
        self._changed: dict[tuple[int, int], w.Window] = {}

    def _of(self, txn: Txn) -> dict[tuple[int, int], w.Window]:
        """The windows ``txn`` changed (those of an earlier one were written or rolled back)."""
        if txn is not self._txn:
            self._txn, self._changed = txn, {}
        return self._changed

    def changed(self, txn: Txn, gid: int, partition: int) -> bool:
        """Whether a job of ``txn`` saved this window (a save more costs nothing)."""
        return (gid, partition) in self._of(txn)

    def load(self, conn: sqlite3.Connection, txn: Txn, gid: int, partition: int) -> w.Window:
        """The window as this transaction left it, else as stored (kept copy or row).

        The frontier is lowered to where a PUT by id stored a message (:func:`rescan`;
        a window this transaction changed was lowered by :meth:`lower` already).
        """
        changed = self._of(txn).get((gid, partition))
        if changed is not None:
            return changed
        row = conn.execute(
            "SELECT nonce, rescan_ts, rescan_tail FROM group_windows"
            " WHERE gid = ? AND partition = ?",
            (gid, partition),
        ).fetchone()
        if row is None:
            return w.load(None)
        # Taken out: the job changes it in place, and only its save brings it back.
        kept = self._kept.pop((gid, partition), None)
        if kept is not None and kept[0] == row[0]:
            window = kept[1]
        else:
            (blob,) = conn.execute(
                "SELECT window FROM group_windows WHERE gid = ? AND partition = ?",
                (gid, partition),
            ).fetchone()
            window = w.load(blob)
        if row[1] is not None:
            w.lower(window, MessageKey(row[1], row[2]))
        return window

    def save(
        self, conn: sqlite3.Connection, txn: Txn, gid: int, partition: int, window: w.Window
    ) -> None:
        """Have ``txn`` write ``window`` before it commits."""
        changed = self._of(txn)
        if not changed:
            txn.before_commit(lambda: self._write(conn, txn))
        changed[(gid, partition)] = window

    def lower(
        self, conn: sqlite3.Connection, txn: Txn, qid: int, lowest: dict[int, MessageKey]
    ) -> None:
        """Lower the frontiers of queue ``qid``'s windows changed in ``txn`` (by partition)."""
        changed = self._of(txn)
        if not changed:
            return
        gids = {gid for (gid,) in conn.execute("SELECT id FROM groups WHERE qid = ?", (qid,))}
        for (gid, partition), window in changed.items():
            if gid in gids and partition in lowest:
                w.lower(window, lowest[partition])

    def _write(self, conn: sqlite3.Connection, txn: Txn) -> None:
        """Write the windows ``txn`` changed: those of groups still stored."""
        for (gid, partition), window in self._of(txn).items():
            # Clears the row's rescan note: :meth:`lower` applied any of this transaction.
            nonce = random.getrandbits(63)
            written = conn.execute(
                "INSERT OR REPLACE INTO group_windows (gid, partition, nonce, window)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM groups WHERE id = ?)",
                (gid, partition, nonce, w.dump(window), gid),
            ).rowcount
            if written:
                self._kept[(gid, partition)] = (nonce, window)
                if len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        self._changed = {}


def rescan(
    conn: sqlite3.Connection,
    windows: Windows,
    txn: Txn,
    qid: int,
    keys: Sequence[tuple[int, MessageKey]],
) -> None:
    """Messages were stored by id at ``keys``: the windows of the queue's groups scan from them.

    The lowest such key is kept per window row (``rescan_ts``, ``rescan_tail``)
    until the window is written next; its load lowers the frontier to it. A
    window a job of this transaction changed is lowered at once: its row may not
    exist yet, or be written over before it is loaded again.
    """
    lowest: dict[int, MessageKey] = {}
    for partition, key in keys:
        if partition not in lowest or key < lowest[partition]:
            lowest[partition] = key
    conn.executemany(
        "UPDATE group_windows SET rescan_ts = ?, rescan_tail = ?"
        " WHERE gid IN (SELECT id FROM groups WHERE qid = ?) AND partition = ?"
        " AND (rescan_ts IS NULL OR (rescan_ts, rescan_tail) > (?, ?))",
        [(k.ts, k.tail, qid, p, k.ts, k.tail) for p, k in lowest.items()],
    )
    windows.lower(conn, txn, qid, lowest)


def _scan(
    conn: sqlite3.Connection,
    qid: int,
    partition: int,
    start: MessageKey | None,
    limit: int,
    now: int,
) -> tuple[list[MessageKey], list[MessageKey]]:
    """Keys at or after ``start``, ascending: (unexpired, expired but not yet purged)."""
    alive, gone, _ = _scan_rows(conn, qid, partition, start, limit, now, "")
    return alive, gone


def _scan_rows(
    conn: sqlite3.Connection,
    qid: int,
    partition: int,
    start: MessageKey | None,
    limit: int,
    now: int,
    columns: str,
) -> tuple[list[MessageKey], list[MessageKey], dict[MessageKey, tuple[Any, ...]]]:
    """:func:`_scan`, and the unexpired rows' further ``columns`` (", a, b") by key."""
    where, args = "", ()  # type: tuple[str, tuple[int | bytes, ...]]
    if start is not None:
        where, args = " AND ts >= ? AND (ts > ? OR tail >= ?)", (start.ts, start.ts, start.tail)
    rows = conn.execute(
        f"SELECT ts, tail, expires{columns} FROM messages WHERE qid = ? AND partition = ?{where}"
        " ORDER BY ts, tail LIMIT ?",
        (qid, partition, *args, limit),
    ).fetchall()
    alive: list[MessageKey] = []
    gone: list[MessageKey] = []
    more: dict[MessageKey, tuple[Any, ...]] = {}
    for row in rows:
        key = MessageKey(row[0], row[1])
        if row[2] > now:
            alive.append(key)
            if columns:
                more[key] = row[3:]
        else:
            gone.append(key)
    return alive, gone, more


def _messages(
    conn: sqlite3.Connection, qid: int, partition: int, keys: Sequence[MessageKey]
) -> dict[MessageKey, Message]:
    """The stored messages of ``keys`` (one partition), by key.

    One range read from the first key to the last, not a lookup per key: the
    keys a claim leases lie within the range it just scanned, and a range read
    of 100 rows costs about what 10 single-row lookups do (SQLite 3.40;
    row-value ``IN`` lists are not searched by the primary key there).
    """
    if not keys:
        return {}
    wanted = set(keys)
    first, last = min(keys), max(keys)
    rows = conn.execute(
        "SELECT ts, tail, body, content_type FROM messages"
        " WHERE qid = ? AND partition = ? AND ts >= ? AND ts <= ?",
        (qid, partition, first.ts, last.ts),
    ).fetchall()
    found = {}
    for ts, tail, body, content_type in rows:
        key = MessageKey(ts, tail)
        if key in wanted:
            found[key] = Message(key, partition, body, content_type)
    return found


def _message(conn: sqlite3.Connection, qid: int, partition: int, key: MessageKey) -> Message | None:
    row = conn.execute(
        "SELECT body, content_type FROM messages"
        " WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?",
        (qid, partition, key.ts, key.tail),
    ).fetchone()
    return None if row is None else Message(key, partition, row[0], row[1])


def _stored(
    conn: sqlite3.Connection, qid: int, partition: int, key: tuple[int, bytes], now: int
) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM messages WHERE qid = ? AND partition = ? AND ts = ? AND tail = ?"
            " AND expires > ?",
            (qid, partition, key[0], key[1], now),
        ).fetchone()
        is not None
    )


def _rules(group: Group, max_in_flight: int) -> w.Rules:
    s = group.settings
    return w.Rules(s.guarantee, s.lease_seconds * 1000, s.max_deliveries, s.ordered, max_in_flight)


def _bury(
    conn: sqlite3.Connection,
    txn: Txn,
    tail: bytes,
    group: Group,
    window: w.Window,
    partition: int,
    doomed: Sequence[MessageKey],
) -> None:
    """Copy messages that reached max_deliveries to the dead letter queue, or drop them."""
    if not doomed:
        return
    qid = int(group.queue.handle)
    target = None
    if group.settings.dead_letter_queue:
        target = queue_sql.get(conn, group.queue.app, group.settings.dead_letter_queue)
    lettered = 0
    for key in doomed:
        message = _message(conn, qid, partition, key)
        if target is None or message is None:
            continue
        stamped = MessageKey(txn.take(1), tail)
        txn.touch(int(target.handle))
        conn.execute(
            "INSERT INTO messages (qid, partition, ts, tail, expires, content_type, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(target.handle),
                random.randint(1, target.partitions),
                stamped.ts,
                tail,
                txn.now_ms + DEAD_LETTER_TTL * 1000,
                message.content_type,
                message.body,
            ),
        )
        lettered += 1
    w.dead(window, lettered, lettered=True)
    w.dead(window, len(doomed) - lettered, lettered=False)


def claim(
    conn: sqlite3.Connection,
    windows: Windows,
    txn: Txn,
    tail: bytes,
    group: Group,
    partitions: Sequence[int],
    limit: int,
    consumer: str | None,
    max_in_flight: int,
) -> list[Delivery]:
    _group_alive(conn, group)
    rules = _rules(group, max_in_flight)
    order = list(partitions)
    if order:  # a fair order: begin at a random partition
        turn = random.randrange(len(order))
        order = order[turn:] + order[:turn]
    found: list[Delivery] = []
    for partition in order:
        if len(found) >= limit:
            break
        found += _claim_in(
            conn, windows, txn, tail, group, partition, rules, limit - len(found), consumer
        )
    return found


def _claim_in(
    conn: sqlite3.Connection,
    windows: Windows,
    txn: Txn,
    tail: bytes,
    group: Group,
    partition: int,
    rules: w.Rules,
    limit: int,
    consumer: str | None,
) -> list[Delivery]:
    """Lease up to ``limit`` messages of one partition (``w.claim_from``)."""
    gid, qid, now = int(group.handle), int(group.queue.handle), txn.now_ms
    window = windows.load(conn, txn, gid, partition)
    stored: dict[MessageKey, tuple[Any, ...]] = {}

    def scan(
        since: MessageKey | None, size: int, frontier: bool
    ) -> tuple[list[MessageKey], list[MessageKey]]:
        # From the frontier a scan reads about as many messages as it leases: it reads
        # their bodies too. Elsewhere it may read many leases in flight: keys only.
        columns = ", body, content_type" if frontier else ""
        alive, gone, more = _scan_rows(conn, qid, partition, since, size, now, columns)
        stored.update(more)
        return alive, gone

    leased, doomed = w.claim_from(window, partition, scan, rules, now, limit, consumer)
    _bury(conn, txn, tail, group, window, partition, doomed)
    windows.save(conn, txn, gid, partition, window)
    missing = [item.key for item in leased if item.key not in stored]
    for key, message in _messages(conn, qid, partition, missing).items():
        stored[key] = (message.body, message.content_type)
    found = []
    for item in leased:
        row = stored.get(item.key)
        if row is not None:
            message = Message(item.key, partition, row[0], row[1])
            found.append(Delivery(message, item.receipt, item.deliveries))
    return found


def settle(
    conn: sqlite3.Connection,
    windows: Windows,
    txn: Txn,
    tail: bytes,
    group: Group,
    action: Action,
    receipts: Sequence[w.Receipt],
    seconds: int,
    max_in_flight: int,
    publish: Sequence[tuple[Queue, NewMessage]] = (),
    idempotency_window: int = 0,
) -> Settled:
    _group_alive(conn, group)
    for target, _ in publish:
        queue_sql.check_current(conn, target)  # checked before anything is written
    gid = int(group.handle)
    rules = _rules(group, max_in_flight)
    by_partition: dict[int, list[w.Receipt]] = {}
    for receipt in receipts:
        by_partition.setdefault(receipt.partition, []).append(receipt)
    loaded = {p: windows.load(conn, txn, gid, p) for p in by_partition}
    if publish:  # all or nothing: no window is changed unless every receipt is accepted
        lost = [
            r for r in receipts if not w.accepts(loaded[r.partition], r, rules, txn.now_ms, action)
        ]
        if lost:
            return Settled([], lost)
    outcome: dict[w.Receipt, bool] = {}
    changed: list[tuple[int, w.Window, list[MessageKey]]] = []
    for partition, items in by_partition.items():
        window = loaded[partition]
        accepted, _lost, doomed = w.settle(window, items, rules, txn.now_ms, action, seconds)
        changed.append((partition, window, doomed))
        taken = set(accepted)
        outcome.update((r, r in taken) for r in items)
    lost = [r for r in receipts if not outcome[r]]
    published = _publish(conn, txn, tail, publish, idempotency_window)
    for partition, window, doomed in changed:
        _bury(conn, txn, tail, group, window, partition, doomed)
        windows.save(conn, txn, gid, partition, window)
    return Settled([r for r in receipts if outcome[r]], lost, published)


def _publish(
    conn: sqlite3.Connection,
    txn: Txn,
    tail: bytes,
    publish: Sequence[tuple[Queue, NewMessage]],
    window: int,
) -> list[Posted]:
    """Post each message to its queue, in order (targets already checked current)."""
    placed: dict[int, Posted] = {}
    by_target: dict[str, tuple[Queue, list[int]]] = {}
    for index, (target, _) in enumerate(publish):
        by_target.setdefault(target.handle, (target, []))[1].append(index)
    for target, indexes in by_target.values():
        posted = message_sql.post(conn, txn, target, tail, [publish[i][1] for i in indexes], window)
        placed.update(zip(indexes, posted, strict=True))
    return [placed[i] for i in range(len(publish))]


def seek(
    conn: sqlite3.Connection,
    windows: Windows,
    txn: Txn,
    group: Group,
    partitions: Sequence[int],
    to: Position,
) -> None:
    _group_alive(conn, group)
    gid, qid = int(group.handle), int(group.queue.handle)
    for partition in partitions:
        window = windows.load(conn, txn, gid, partition)
        w.seek(window, _position(conn, qid, partition, to))
        windows.save(conn, txn, gid, partition, window)


def report(
    conn: sqlite3.Connection, windows: Windows, txn: Txn, tail: bytes, group: Group
) -> GroupReport:
    """The state, after tidying each window (expired messages, dead letters) in this transaction."""
    _group_alive(conn, group)
    gid, qid = int(group.handle), int(group.queue.handle)
    rules = _rules(group, 0)
    now = txn.now_ms
    counters = w.Counters()
    partitions = []
    for partition in range(1, group.queue.partitions + 1):
        window = windows.load(conn, txn, gid, partition)
        alive, gone = _scan(conn, qid, partition, window.start, w.scan_size(window, 0), now)
        doomed = w.tidy(window, alive, rules, now, gone)
        # Else unchanged, or changed only as a claim would: the next load decodes the row again.
        if doomed or gone or alive or windows.changed(txn, gid, partition):
            _bury(conn, txn, tail, group, window, partition, doomed)
            windows.save(conn, txn, gid, partition, window)
        seen = w.state(window, partition, now)
        done = w.done_keys(window)
        start = window.start
        where, args = "", ()  # type: tuple[str, tuple[int | bytes, ...]]
        if start is not None:
            where, args = " AND ts >= ? AND (ts > ? OR tail >= ?)", (start.ts, start.ts, start.tail)
        (count,) = conn.execute(
            f"SELECT count(*) FROM messages WHERE qid = ? AND partition = ?{where} AND expires > ?",
            (qid, partition, *args, now),
        ).fetchone()
        alive, _ = _scan(conn, qid, partition, start, len(done) + 1, now)
        oldest = next((k for k in alive if k not in done), None)
        pending = count - sum(_stored(conn, qid, partition, key, now) for key in done)
        partitions.append(
            PartitionReport(partition, start, seen.in_flight, pending, oldest, seen.consumers)
        )
        for name in w.Counters.__struct_fields__:
            setattr(counters, name, getattr(counters, name) + getattr(window.counters, name))
    return GroupReport(partitions, counters)
