"""Rate limits (SPEC §9): token buckets per application and per anonymous client address.

A bucket holds up to ``burst`` tokens and refills at ``per_second``; a request
takes one token, or is refused (429) without taking any, so refused requests
do not count. A request authenticated as an application uses that
application's bucket; one without an application (reading a public queue)
uses the bucket of its client address, shared by every anonymous request
from there. The buckets live in this process: with ``--workers N`` each
worker keeps its own, so the limits hold per process (docs/operations.md).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from queuey.core.errors import TooManyRequests

#: Anonymous client addresses whose buckets are kept at most; past it, full buckets
#: (which a new one equals) go first, then the least recently used.
MAX_ADDRESSES = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` tokens a second, at most ``burst`` saved up."""

    per_second: float
    burst: float

    @classmethod
    def of(cls, per_second: float, burst: float = 0.0) -> Rate | None:
        """The rate configured, or None for no limit; a burst of 0 is the rate (at least 1)."""
        if per_second <= 0:
            return None
        return cls(per_second, burst if burst > 0 else max(per_second, 1.0))


class TokenBucket:
    """One bucket; starts full."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = rate.burst
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            rate = self.rate
            self.tokens = min(rate.burst, self.tokens + (now - self.stamp) * rate.per_second)
            self.stamp = now

    def take(self, now: float) -> float:
        """Take a token: 0 when taken, else the seconds until one will be there (none taken)."""
        self.refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate.per_second

    def full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.rate.burst


def retry_after(seconds: float) -> int:
    """Whole seconds for ``Retry-After``: rounded up, at least 1."""
    return max(1, math.ceil(seconds))


class RateLimiter:
    """The buckets of one process: one per limited application, one per anonymous address."""

    def __init__(
        self,
        applications: Mapping[str, Rate],
        anonymous: Rate | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.clock = clock
        self.anonymous = anonymous
        self.max_addresses = max_addresses
        now = clock()
        self._apps = {app: TokenBucket(rate, now) for app, rate in applications.items()}
        self._addresses: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def active(self) -> bool:
        """Whether any limit is configured (else ``admit`` never refuses)."""
        return bool(self._apps) or self.anonymous is not None

    def admit(self, app: str | None, address: Callable[[], str]) -> None:
        """Count a request of ``app`` (None: anonymous, from ``address()``), or 429.

        ``address`` is called only when an anonymous limit applies.
        """
        if app is not None:
            bucket = self._apps.get(app)
            if bucket is None:
                return
            wait = bucket.take(self.clock())
            if wait:
                raise TooManyRequests(
                    f"Application {app} is over its limit of {bucket.rate.per_second:g}"
                    f" requests per second.",
                    retry_after(wait),
                )
            return
        if self.anonymous is None:
            return
        wait = self._address_bucket(address()).take(self.clock())
        if wait:
            raise TooManyRequests(
                "Requests without credentials from this address are over the limit of"
                f" {self.anonymous.per_second:g} per second.",
                retry_after(wait),
            )

    def _address_bucket(self, address: str) -> TokenBucket:
        assert self.anonymous is not None
        bucket = self._addresses.get(address)
        if bucket is not None:
            self._addresses.move_to_end(address)
            return bucket
        now = self.clock()
        if len(self._addresses) >= self.max_addresses:
            self._forget(now)
        bucket = self._addresses[address] = TokenBucket(self.anonymous, now)
        return bucket

    def _forget(self, now: float) -> None:
        """Make room: drop full buckets (a new one is the same), then the least recently used."""
        for key in [k for k, b in self._addresses.items() if b.full(now)]:
            del self._addresses[key]
        keep = self.max_addresses * 9 // 10
        while len(self._addresses) > keep:
            self._addresses.popitem(last=False)
