"""What the client hands back: messages, deliveries, post answers, tokens, consume tallies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """A message as a read returns it. ``timestamp`` stays a string (SPEC §1: never a float)."""

    message_id: str
    timestamp: str
    body: str
    partition: int
    content_type: str

    @property
    def ref(self) -> str:
        """``partition:id``: how a path names this message (reads, overwrites, deletes by id)."""
        return f"{self.partition}:{self.message_id}"

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Message:
        return cls(
            message_id=item["message_id"],
            timestamp=item["timestamp"],
            body=item["body"],
            partition=int(item["partition"]),
            content_type=item.get("content_type") or "text/plain",
        )


@dataclass(frozen=True, slots=True)
class Delivery(Message):
    """A message handed to this consumer under a lease (SPEC §6)."""

    receipt: str
    deliveries: int
    #: The lease's length as the claim answered it.
    lease_seconds: int

    @classmethod
    def from_claim(cls, item: dict[str, Any], lease_seconds: int) -> Delivery:
        return cls(
            message_id=item["message_id"],
            timestamp=item["timestamp"],
            body=item["body"],
            partition=int(item["partition"]),
            content_type=item.get("content_type") or "text/plain",
            receipt=item["receipt"],
            deliveries=int(item.get("deliveries", 1)),
            lease_seconds=lease_seconds,
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a posted message was stored (the answer to a post; the wire calls the id ``key``)."""

    message_id: str
    timestamp: str
    partition: int

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.message_id}"

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Sent:
        return cls(
            message_id=item["key"], timestamp=item["timestamp"], partition=int(item["partition"])
        )


@dataclass(frozen=True, slots=True)
class Token:
    """A scoped token (SPEC §8): pass ``token`` as ``Client(..., token=...)``."""

    token: str
    expires_in: int
    scope: tuple[str, ...]


@dataclass(slots=True)
class Tally:
    """What one ``consume`` did; returned when it stops."""

    handled: int = 0
    """Handler calls that returned."""
    acknowledged: int = 0
    failed: int = 0
    """Handler calls that raised (their messages were released)."""
    released: int = 0
    lost: int = 0
    """Messages whose lease was lost before the acknowledgement (LeaseLost)."""
