"""``queuey bench``: a load tester for any Queuey server.

Posts N messages of S bytes with C concurrent keep-alive connections to one
queue (``--batch B`` posts B messages per request), or with ``--read`` pages
the queue back with ``since``. A progress bar runs on standard error; a
summary follows: rate, latency percentiles and errors by HTTP status.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Results:
    """What one run measured."""

    requests: int = 0
    messages: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency in milliseconds (nearest rank)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def summary(self, verb: str) -> str:
        seconds = max(self.seconds, 1e-9)
        lines = [
            f"{verb} {self.messages} messages in {self.requests} requests, {self.seconds:.2f} s",
            f"rate: {self.requests / seconds:,.0f} requests/s,"
            f" {self.messages / seconds:,.0f} msg/s",
            f"latency: p50 {self.percentile(50):.2f} ms, p95 {self.percentile(95):.2f} ms,"
            f" p99 {self.percentile(99):.2f} ms",
        ]
        if self.errors:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
            lines.append(f"errors: {sum(self.errors.values())} ({detail})")
        else:
            lines.append("errors: 0")
        return "\n".join(lines)


class Progress:
    """A one-line progress bar on standard error, redrawn at most 10 times a second."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = max(total, 1)
        self.enabled = enabled
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._drawn > 0.1 or self.done >= self.total):
            self._drawn = now
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            rate = self.done / max(now - self.started, 1e-9)
            sys.stderr.write(f"\r[{bar:<30}] {self.done}/{self.total} {rate:,.0f} msg/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--app", required=True, help="application name")
    parser.add_argument("--key", required=True, help="the application's key")
    parser.add_argument("--queue", required=True, help="queue name")
    parser.add_argument("--create", action="store_true", help="create the queue first")
    parser.add_argument("--consistency", default="strong", help="for --create")
    parser.add_argument("--messages", type=int, default=10_000, help="messages to post or read")
    parser.add_argument("--size", type=int, default=140, help="message size in bytes")
    parser.add_argument("--concurrency", type=int, default=16, help="connections in flight")
    parser.add_argument("--batch", type=int, default=1, help="messages per POST (JSON batch)")
    parser.add_argument("--read", action="store_true", help="read the queue instead of posting")
    parser.add_argument("--page", type=int, default=1000, help="messages per read request")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


async def _post(client: httpx.AsyncClient, args: argparse.Namespace, progress: Progress) -> Results:
    results = Results()
    body = "x" * args.size
    path = f"/v1/{args.app}/{args.queue}"
    counts = [args.batch] * (args.messages // args.batch)
    if args.messages % args.batch:
        counts.append(args.messages % args.batch)
    work: asyncio.Queue[int] = asyncio.Queue()
    for count in counts:
        work.put_nowait(count)

    async def worker() -> None:
        while not work.empty():
            count = work.get_nowait()
            began = time.perf_counter()
            try:
                if args.batch == 1:
                    response = await client.post(
                        path, content=body, headers={"Content-Type": "text/plain"}
                    )
                else:
                    batch = {"messages": [{"body": body} for _ in range(count)]}
                    response = await client.post(path, json=batch)
            except httpx.HTTPError as exc:
                results.errors[type(exc).__name__] += 1
                continue
            results.latencies.append(time.perf_counter() - began)
            results.requests += 1
            if response.status_code == 201:
                results.messages += count
            else:
                results.errors[str(response.status_code)] += 1
            progress.advance(count)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(args.concurrency, 1))))
    results.seconds = time.perf_counter() - began
    return results


async def _read(client: httpx.AsyncClient, args: argparse.Namespace, progress: Progress) -> Results:
    """Page through partition 1 with ``since`` until ``--messages`` were read or none remain."""
    results = Results()
    path = f"/v1/{args.app}/{args.queue}"
    since = ""
    began = time.perf_counter()
    while results.messages < args.messages:
        start = time.perf_counter()
        params = {"limit": str(min(args.page, 1000)), "since": since}
        try:
            response = await client.get(path, params=params)
        except httpx.HTTPError as exc:
            results.errors[type(exc).__name__] += 1
            break
        results.latencies.append(time.perf_counter() - start)
        results.requests += 1
        if response.status_code != 200:
            results.errors[str(response.status_code)] += 1
            break
        messages: list[dict[str, Any]] = response.json()["messages"]
        if since and messages and messages[0]["message_id"] == since:
            messages = messages[1:]  # since is inclusive
        if not messages:
            break
        since = messages[-1]["message_id"]
        results.messages += len(messages)
        progress.advance(len(messages))
    results.seconds = time.perf_counter() - began
    return results


async def _run(args: argparse.Namespace) -> Results:
    headers = {"Authorization": f"Application {args.key}"}
    limits = httpx.Limits(max_connections=max(args.concurrency, 1))
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, limits=limits, timeout=60
    ) as client:
        if args.create:
            fields = {"queue_name": args.queue, "consistency": args.consistency}
            created = await client.post(f"/v1/{args.app}", json=fields)
            if created.status_code not in (200, 201):
                raise SystemExit(f"cannot create the queue: {created.status_code} {created.text}")
        progress = Progress(args.messages, enabled=not args.quiet and sys.stderr.isatty())
        try:
            return await (_read if args.read else _post)(client, args, progress)
        finally:
            progress.close()


def run(args: argparse.Namespace) -> int:
    """Run the load test; exit status 1 if any request failed."""
    results = asyncio.run(_run(args))
    print(results.summary("read" if args.read else "posted"))
    return 1 if results.errors else 0
