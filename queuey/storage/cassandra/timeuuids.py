"""Message keys as Cassandra TimeUUIDs, and the hour buckets that bound a partition's size.

Cassandra orders TimeUUIDs by time, then by bytes 8-15 compared as *signed*
bytes; the contract's tie-break is unsigned. The two differ only for two
messages of one 100 ns tick made by different writers.
"""

from __future__ import annotations

import uuid

from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey

HOUR_TICKS = 3600 * 10_000_000
#: Cassandra's smallest and largest TimeUUID tails (it compares bytes 8-15 signed).
MIN_TAIL = b"\x80" * 8
MAX_TAIL = b"\x7f" * 8


def timeuuid(key: MessageKey) -> uuid.UUID:
    """The version-1 UUID of ``key``."""
    ts = key.ts
    head = (
        ((ts & 0xFFFFFFFF) << 32) | (((ts >> 32) & 0xFFFF) << 16) | ((ts >> 48) & 0x0FFF) | 0x1000
    )
    return uuid.UUID(int=(head << 64) | int.from_bytes(key.tail, "big"))


def message_key(value: uuid.UUID) -> MessageKey:
    """The key of a version-1 UUID read back."""
    return MessageKey(value.time, value.bytes[8:])


def key_of_bytes(raw: bytes) -> MessageKey:
    """The key of a version-1 UUID read back as its 16 bytes (``timeuuidAsBlob``).

    As :func:`message_key` without making a ``uuid.UUID``: range reads answer
    many, and the driver's UUIDs cost more than the rest of their decoding.
    """
    head = int.from_bytes(raw[:8], "big")
    ts = ((head & 0x0FFF) << 48) | (((head >> 16) & 0xFFFF) << 32) | (head >> 32)
    return MessageKey(ts, raw[8:])


def hour(ts: int) -> int:
    """The hour bucket (hours since the Unix epoch) of a key timestamp."""
    return (ts - UNIX_EPOCH_TICKS) // HOUR_TICKS
