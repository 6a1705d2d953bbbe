"""The blocking :class:`Group`: a consumer group's settings, claims and leases."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from queuey.client import calls
from queuey.client.calls import Receipt, Since
from queuey.client.models import Delivery, Sent, Tally
from queuey.client.sync.consume import Consumer

if TYPE_CHECKING:
    from queuey.client.sync.queue import Queue


class Group:
    """A consumer group of a queue (SPEC §6): claim, then ack or release, under leases."""

    def __init__(self, queue: Queue, name: str) -> None:
        self.queue = queue
        self.name = name
        self._client = queue.client
        self._at = (queue.client._core.paths, queue.name, name)

    def __repr__(self) -> str:
        return f"<Group {self._client.app}/{self.queue.name}/{self.name}>"

    def create(
        self,
        guarantee: str | None = None,
        lease_seconds: int | None = None,
        max_deliveries: int | None = None,
        dead_letter_queue: str | None = None,
        ordered: bool | None = None,
        start: Since | None = None,
    ) -> dict[str, Any]:
        """Create the group (or change the given settings of an existing one); its settings.

        ``start`` (``"earliest"``, ``"latest"``, a timestamp or an id) only on creation.
        """
        fields = calls.group_fields(
            guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered, start
        )
        return self._client.call(calls.put_group(*self._at, fields))

    def update(
        self,
        guarantee: str | None = None,
        lease_seconds: int | None = None,
        max_deliveries: int | None = None,
        dead_letter_queue: str | None = None,
        ordered: bool | None = None,
    ) -> dict[str, Any]:
        """Change the given settings; all settings."""
        return self.create(guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered)

    def state(self) -> dict[str, Any]:
        """Settings, counters and each partition's cursor, leases and backlog."""
        return self._client.call(calls.get_group(*self._at))

    def delete(self) -> None:
        self._client.call(calls.delete_group(*self._at))

    def claim(
        self,
        limit: int | None = None,
        wait: float | None = None,
        partitions: Iterable[int] | None = None,
        consumer: str | None = None,
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages, waiting up to ``wait`` seconds for the first."""
        return self._client.call(calls.claim(*self._at, limit, wait, partitions, consumer))

    def ack(self, leases: Iterable[Receipt]) -> list[str]:
        """Acknowledge deliveries (or receipts); the receipts accepted.

        Raises :class:`LeaseLost` if any was lost (``.lost``); the others
        (``.acknowledged``) count all the same.
        """
        return self._client.call(calls.ack(*self._at, leases))

    def ack_and_publish(
        self, leases: Iterable[Receipt], messages: Sequence[Mapping[str, Any]]
    ) -> list[Sent]:
        """Acknowledge and post ``messages`` (batch items plus ``queue``) in one step."""
        return self._client.call(calls.ack_and_publish(*self._at, leases, messages))

    def release(self, leases: Iterable[Receipt], delay: int | None = None) -> list[str]:
        """End leases now; the messages come back after ``delay`` seconds."""
        return self._client.call(calls.release(*self._at, leases, delay))

    def extend(self, leases: Iterable[Receipt], seconds: int | None = None) -> list[str]:
        """Make leases end ``seconds`` from now (default: the group's lease_seconds)."""
        return self._client.call(calls.extend(*self._at, leases, seconds))

    def seek(self, to: Since, partitions: Iterable[int] | None = None) -> dict[str, Any]:
        """Move the group to ``"earliest"``, ``"latest"``, a timestamp or an id; its state."""
        return self._client.call(calls.seek(*self._at, to, partitions))

    def consume(
        self,
        handler: Callable[[Delivery], object],
        limit: int = 10,
        wait: float = 20.0,
        stop: threading.Event | None = None,
        delay: int | None = None,
        partitions: Iterable[int] | None = None,
        consumer: str | None = None,
    ) -> Tally:
        """Claim and hand each message to ``handler`` until ``stop`` is set or Ctrl-C.

        A handler that returns acknowledges its message; one that raises
        releases it (available again after ``delay`` seconds) and the loop goes
        on. Leases are extended in a background thread while the handler runs.
        ``stop`` is looked at between messages and between claims (a claim
        waits up to ``wait`` seconds). On stop or ``KeyboardInterrupt`` the
        messages claimed but not handled are released, and it returns what it did.
        """
        return Consumer(self, handler, delay).run(limit, wait, stop, partitions, consumer)
