"""The consumer-groups part of the storage contract (SPEC §6).

A backend that serves groups implements :class:`GroupStorage` beside
:class:`queuey.storage.base.Storage`. Every change of a group's delivery state
is a compare-and-set of one :class:`queuey.storage.window.Window` per (group,
partition) — SQLite inside the writer's transaction, Cassandra with a
lightweight transaction — applied with the pure functions of ``window.py``,
so both backends follow one set of rules. Expiry of leases is judged by the
server's clock only.

Durability: group state is written with the queue's consistency (SQLite:
fsynced for strong and very_strong; Cassandra: at the queue's level, the
conditions at SERIAL), so it is as durable as the queue's messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import msgspec

from queuey.storage.base import Message, NewMessage, Posted, Queue
from queuey.storage.keys import MessageKey
from queuey.storage.window import Counters, Receipt

GUARANTEES = ("at_most_once", "at_least_once", "exactly_once")
#: A group's default guarantee, from its queue's consistency (fixed at creation).
DEFAULT_GUARANTEE = {
    "weak": "at_most_once",
    "strong": "at_least_once",
    "very_strong": "exactly_once",
}
Action = Literal["ack", "release", "extend"]
#: A dead-lettered message's TTL in its new queue: the default of a post (3 days).
DEAD_LETTER_TTL = 259200
#: Where a group (or a seek) begins: the oldest message, after the newest one, or a key.
Position = Literal["earliest", "latest"] | MessageKey


class GroupNotFound(Exception):
    """The group was deleted (or never was) while the call was under way."""


@dataclass(frozen=True, slots=True)
class GroupSettings:
    guarantee: str = "at_least_once"
    lease_seconds: int = 30
    max_deliveries: int = 0
    dead_letter_queue: str | None = None
    ordered: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """A stored group of one queue incarnation.

    ``handle`` names this incarnation of the group: a group deleted and
    created again under its name gets a new one, and receipts of the old one
    are lost there.
    """

    queue: Queue
    name: str
    settings: GroupSettings
    created: float
    handle: str = field(compare=False)


class Delivery(msgspec.Struct):
    """A message leased by a claim (a struct: created in C, a claim of 100 makes 100)."""

    message: Message
    receipt: Receipt
    deliveries: int


class PartitionReport(NamedTuple):
    partition: int
    cursor: MessageKey | None
    in_flight: int
    pending: int
    oldest_pending: MessageKey | None
    consumers: list[str]


class GroupReport(NamedTuple):
    partitions: list[PartitionReport]
    counters: Counters


class Settled(NamedTuple):
    accepted: list[Receipt]
    lost: list[Receipt]
    published: Sequence[Posted] = ()


class GroupStorage(Protocol):
    """Consumer groups on a store. Every method may raise ``StoreUnavailable``.

    Methods taking a ``Group`` raise :class:`GroupNotFound` when that
    incarnation is gone (deleted, or its queue deleted).
    """

    async def receipt_secret(self) -> bytes:
        """A secret shared by every web node of this store, for signing receipts (32 bytes)."""

    async def create_group(
        self, queue: Queue, name: str, settings: GroupSettings, start: Position
    ) -> tuple[Group, bool]:
        """Create a group beginning at ``start``; if it exists, change nothing.

        Returns the stored group and whether this call created it.
        """

    async def get_group(self, queue: Queue, name: str) -> Group | None:
        """The group, or None."""

    async def list_groups(self, queue: Queue) -> list[Group]:
        """Every group of the queue, in binary name order."""

    async def update_group(self, group: Group, settings: GroupSettings) -> Group:
        """Replace the settings (not the guarantee's past deliveries)."""

    async def delete_group(self, group: Group) -> None:
        """Remove the group and its state; its receipts are lost from now on."""

    async def claim(
        self,
        group: Group,
        partitions: Sequence[int],
        limit: int,
        consumer: str | None,
        max_in_flight: int,
    ) -> list[Delivery]:
        """Lease up to ``limit`` available messages of these partitions, oldest first in each.

        A message reaching ``max_deliveries`` is copied to the dead letter
        queue (same write on SQLite; before it leaves the group on Cassandra)
        or dropped, and counted. Two concurrent claims never lease one
        message twice.
        """

    async def settle(
        self,
        group: Group,
        action: Action,
        receipts: Sequence[Receipt],
        seconds: int,
        publish: Sequence[tuple[Queue, NewMessage]] = (),
    ) -> Settled:
        """Acknowledge, release (``seconds``: delay) or extend (``seconds``: new lease).

        Each receipt is accepted or lost by the rules of the group's guarantee
        (``window.settle``); accepted ones take effect even when others are lost.

        ``publish`` (acknowledgements only): messages to post to queues of the
        group's application in the same step — every receipt accepted and
        every message stored, or nothing done (then ``accepted`` is empty).
        Messages without an idempotency key should be given one derived from
        the receipts, so that a retried acknowledgement publishes nothing
        again. SQLite: one transaction. Raises ``QueueNotFound`` or
        ``QueueChanged`` for a target that is gone or changed (nothing done).
        """

    async def seek(self, group: Group, partitions: Sequence[int], to: Position) -> None:
        """Move each partition's cursor to ``to``; every lease there ends."""

    async def report(self, group: Group) -> GroupReport:
        """The group's state: per partition of the queue, and its counters."""
