"""Message keys: the (timestamp, tail) pair behind a version-1 UUID, and the id clock.

A message id is a version-1 UUID. Storage orders messages by the UUID's 60-bit
timestamp (100 ns ticks since 1582-10-15), ties broken by bytes 8-15 of the
UUID compared as unsigned big-endian. Keeping the two parts apart lets every
backend store and compare them natively: an integer and an 8-byte blob.
"""

from __future__ import annotations

import os
import threading
import time
from typing import NamedTuple

#: Ticks between the UUID epoch (1582-10-15) and the Unix epoch.
UNIX_EPOCH_TICKS = 0x01B21DD213814000
#: Largest 60-bit timestamp a version-1 UUID can hold.
MAX_TICKS = (1 << 60) - 1


class MessageKey(NamedTuple):
    """Where a message sits in its partition: compare as a tuple."""

    ts: int
    """The UUID's 60-bit timestamp, in 100 ns ticks since 1582-10-15."""
    tail: bytes
    """Bytes 8-15 of the UUID (variant, clock sequence, node); b"" is a pure time bound."""


def now_ticks() -> int:
    """The current time in UUID ticks."""
    return time.time_ns() // 100 + UNIX_EPOCH_TICKS


def new_tail() -> bytes:
    """A random clock sequence and node for one writer (never a MAC address).

    The node's multicast bit is set, as RFC 4122 asks of random nodes, so it can
    never equal a real network card's address.
    """
    raw = bytearray(os.urandom(8))
    raw[0] = 0x80 | (raw[0] & 0x3F)  # RFC 4122 variant
    raw[2] |= 0x01  # multicast bit of the node's first byte
    return bytes(raw)


class IdClock:
    """Hands out strictly increasing timestamps for one writer.

    A clock that stands still or steps back still yields increasing values:
    each value is max(now, previous + 1). Backends that share a store between
    processes feed in the largest timestamp already committed (``floor``).
    The wall clock is read through :func:`now_ticks`, looked up at each call,
    so a test can step it back.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def take(self, count: int, floor: int = 0) -> int:
        """Reserve ``count`` consecutive timestamps above ``floor`` and every earlier one.

        Returns the first; the caller owns ``first .. first + count - 1``.
        """
        with self._lock:
            first = max(now_ticks(), self._last + 1, floor + 1)
            self._last = first + count - 1
            return first
