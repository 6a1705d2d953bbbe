"""Message ids and timestamps as they appear on the wire.

An id is the 32 lowercase hex digits of a version-1 UUID (no hyphens); a
timestamp is the UUID's 100 ns tick as seconds since the Unix epoch, a decimal
string with exactly 7 fractional digits. Both are computed with integers only:
a float cannot hold 100 ns at today's epoch.
"""

from __future__ import annotations

import re

from queuey.core.errors import InvalidMessageID
from queuey.core.validation import parse_integer
from queuey.storage.keys import MAX_TICKS, UNIX_EPOCH_TICKS, MessageKey

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]*))?|\.([0-9]+)")
TICKS_PER_SECOND = 10_000_000


def format_id(key: MessageKey) -> str:
    """The 32 hex digits of the version-1 UUID for ``key``."""
    ts = key.ts
    head = (
        ((ts & 0xFFFFFFFF) << 32) | (((ts >> 32) & 0xFFFF) << 16) | ((ts >> 48) & 0x0FFF) | 0x1000
    )
    return f"{head:016x}{key.tail.hex()}"


def format_timestamp(ts: int) -> str:
    """UUID ticks as Unix seconds with exactly 7 fractional digits."""
    unix = ts - UNIX_EPOCH_TICKS
    sign = "-" if unix < 0 else ""
    seconds, fraction = divmod(abs(unix), TICKS_PER_SECOND)
    return f"{sign}{seconds}.{fraction:07d}"


def is_hex_id(text: str) -> bool:
    return _HEX32.fullmatch(text) is not None


def parse_id(text: str) -> MessageKey:
    """Parse the 32 hex digits of a version-1 UUID; raise :class:`InvalidMessageID` otherwise.

    The RFC 4122 variant is required, and the UUID's time may not lie before
    1970: such an id could not be written back as a timestamp of the contract.
    """
    if _HEX32.fullmatch(text) is None:
        raise InvalidMessageID(f"{text!r} is not 32 hex digits")
    value = int(text, 16)
    if (value >> 76) & 0xF != 1:
        raise InvalidMessageID(f"{text!r} is not a version-1 (time-based) UUID")
    if (value >> 62) & 0b11 != 0b10:
        raise InvalidMessageID(f"{text!r} is not an RFC 4122 UUID (variant bits)")
    head = value >> 64
    ts = ((head & 0x0FFF) << 48) | (((head >> 16) & 0xFFFF) << 32) | (head >> 32)
    if ts < UNIX_EPOCH_TICKS:
        raise InvalidMessageID(f"{text!r} is a UUID of a time before 1970")
    return MessageKey(ts, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big"))


def parse_timestamp(text: str, round_up: bool = True) -> int | None:
    """Unix seconds as a non-negative decimal string to UUID ticks.

    Digits beyond the 7th fractional one round up to the next tick (or down,
    with ``round_up`` false), so that "at or after" (or "at or before") the
    given time never includes a message outside it. Any number of digits is
    accepted; times beyond what a UUID holds are clamped past its end.
    Returns None when ``text`` is not such a number.
    """
    match = _DECIMAL.fullmatch(text)
    if match is None:
        return None
    whole_digits = (match.group(1) or "0").lstrip("0") or "0"
    if len(whole_digits) > 18:  # past year 30,000,000,000: beyond every UUID time
        return MAX_TICKS + 1
    whole = int(whole_digits)
    fraction = match.group(2) if match.group(1) is not None else match.group(3)
    fraction = fraction or ""
    ticks = whole * TICKS_PER_SECOND + int(fraction[:7].ljust(7, "0"))
    if round_up and fraction[7:].strip("0"):
        ticks += 1
    return min(ticks + UNIX_EPOCH_TICKS, MAX_TICKS + 1)


def parse_id_list(text: str) -> list[tuple[int, MessageKey]]:
    """Parse ``id,N:id,...`` into unique ``(partition, key)`` pairs in the order given.

    No prefix means partition 1; empty items are skipped. A prefix that is not a
    number, or an item that is not an id: :class:`InvalidMessageID`. A prefix of
    any length is a number (huge ones come back as +-``HUGE``, outside every queue).
    """
    seen: dict[tuple[int, MessageKey], None] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        partition = 1
        if ":" in item:
            prefix, _, item = item.partition(":")
            number = parse_integer(prefix)
            if number is None:
                raise InvalidMessageID(f"partition prefix {prefix[:40]!r} is not a number")
            partition = number
        seen.setdefault((partition, parse_id(item)), None)
    return list(seen)


def partitions_named(text: str) -> frozenset[int]:
    """The partitions an id list names (no prefix: 1), for the rights check before validation.

    Lenient where :func:`parse_id_list` is strict: an item whose prefix is not a
    number is left out (the request is answered 400 ``InvalidMessageID`` after
    the rights, SPEC §2).
    """
    found: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        prefix, colon, _ = item.partition(":")
        number = parse_integer(prefix) if colon else 1
        if number is not None:
            found.add(number)
    return frozenset(found)
