"""What a run of ``queuey bench`` measured, and the summary it prints."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from queuey.bench.options import Options


def percentile(ordered: list[float], p: float) -> float:
    """The ``p``-th percentile of sorted values (nearest rank); 0.0 when there are none."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[min(int(rank), len(ordered)) - 1]


@dataclass
class Results:
    """What one run measured; filled in while it runs, so an interrupted run still reports."""

    requests: int = 0
    messages: int = 0
    duplicates: int = 0
    latencies: list[float] = field(default_factory=list)
    """Seconds per answered request (failed transports excluded)."""
    errors: Counter[str] = field(default_factory=Counter)
    """Failed requests by HTTP status, or by exception name when there was no answer."""
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def stop(self) -> None:
        """Fix the elapsed time."""
        self.seconds = time.perf_counter() - self.started

    def answered(self, began: float, status: int, ok: bool) -> None:
        """Count one request that got an HTTP answer."""
        self.latencies.append(time.perf_counter() - began)
        self.requests += 1
        if not ok:
            self.errors[str(status)] += 1

    def failed(self, exc: Exception) -> None:
        """Count one request that got no answer."""
        self.requests += 1
        self.errors[type(exc).__name__] += 1

    def summary(self, options: Options, interrupted: bool = False) -> str:
        """The report printed at the end, one figure per line."""
        seconds = max(self.seconds, 1e-9)
        ordered = sorted(self.latencies)
        ms = [percentile(ordered, p) * 1000 for p in (50, 95, 99)]
        top = ordered[-1] * 1000 if ordered else 0.0
        if options.group:
            consumers = f"{options.concurrency} consumer{'s' if options.concurrency > 1 else ''}"
            head = (
                f"POST {options.url}{options.path}/groups/{options.group}/claim and ack:"
                f" {options.batch} per claim, {consumers}"
            )
            counted = f"consumed: {self.messages} messages in {self.requests} requests"
        elif options.read:
            readers = f"{options.concurrency} reader{'s' if options.concurrency > 1 else ''}"
            head = (
                f"GET {options.url}{options.path}: paging with since, {options.batch} per page,"
                f" {readers}"
            )
            counted = f"read:     {self.messages} messages in {self.requests} requests"
        else:
            head = (
                f"POST {options.url}{options.path}: {options.messages} messages of"
                f" {options.size} bytes, {options.batch} per request,"
                f" concurrency {options.concurrency}"
            )
            counted = f"posted:   {self.messages} messages in {self.requests} requests"
        lines = [
            head + (" (interrupted)" if interrupted else ""),
            f"{counted}, {self.seconds:.2f} s",
            f"rate:     {self.requests / seconds:,.1f} requests/s,"
            f" {self.messages / seconds:,.1f} messages/s",
            f"latency:  p50 {ms[0]:.2f} ms, p95 {ms[1]:.2f} ms, p99 {ms[2]:.2f} ms,"
            f" max {top:.2f} ms",
        ]
        if options.read or options.group:
            lines.append(f"repeats:  {self.duplicates}")
        if self.errors:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
            lines.append(f"errors:   {sum(self.errors.values())} ({detail})")
        else:
            lines.append("errors:   0")
        return "\n".join(lines)
