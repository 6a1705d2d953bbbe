"""``queuey bench``: a load tester for any Queuey server.

Posting (the default) sends ``--messages`` messages of ``--size`` bytes to one
queue over ``--concurrency`` keep-alive connections, ``--batch`` messages per
request (one message is sent as the raw request body, more as a JSON batch).
With ``--read`` each of ``--concurrency`` readers pages through the queue with
``since``, ``--batch`` messages per page, every partition in turn, as a
consumer would. With ``--group G`` ``--concurrency`` consumers of consumer
group G claim ``--batch`` messages at a time and acknowledge them, until the
group has nothing left (or ``--messages`` were consumed). A one-line progress
bar runs on standard error while a terminal is attached; a summary follows on
standard output: counts, rate, latency percentiles and errors by HTTP status
(or by exception for requests that got no answer). The exit status is 0 when
every request succeeded.

Every request goes through :class:`queuey.client.AsyncClient` (one HTTP code
path with the client people use), with its retries off so that each failure
is counted rather than hidden. Posts carry idempotency keys, as the client's do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO, TypeVar

import httpx

from queuey.client import AsyncClient, AsyncQueue, ConnectionFailed, Delivery, QueueyError

T = TypeVar("T")

#: Defaults that depend on the mode: (posting, reading, consuming in a group).
DEFAULT_CONCURRENCY = (16, 1, 4)
DEFAULT_BATCH = (1, 100, 100)
DEFAULT_POST_MESSAGES = 1000
#: The largest batch and page the server accepts (SPEC §3).
MAX_BATCH = 1000
TIMEOUT = 30.0


# -- arguments -------------------------------------------------------------------


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than minimum value 1")
    return value


def _batch(text: str) -> int:
    """An argparse type: a batch or page size the server accepts (1..1000)."""
    value = _positive(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"{value} is greater than maximum value {MAX_BATCH}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``queuey bench`` on its subcommand parser."""
    parser.description = (
        "Post messages to a queue of any Queuey server, or read them back by paging with "
        "`since`, and report rate, latency percentiles and errors."
    )
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--app", required=True, help="application name")
    parser.add_argument("--key", required=True, help="an application key of --app")
    parser.add_argument("--queue", required=True, help="queue name")
    parser.add_argument(
        "--create", action="store_true", help="create the queue first (kept if it exists)"
    )
    parser.add_argument(
        "--consistency",
        choices=("weak", "strong", "very_strong"),
        help="consistency of a queue made by --create (default: the server's, strong)",
    )
    parser.add_argument(
        "--messages",
        type=_positive,
        metavar="N",
        help=f"messages to post (default {DEFAULT_POST_MESSAGES}); with --read, the most "
        "each reader reads (default: all); with --group, the most consumed in all",
    )
    parser.add_argument(
        "--size", type=_positive, default=140, metavar="S", help="bytes per message (default 140)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        metavar="C",
        help=f"connections posting at once (default {DEFAULT_CONCURRENCY[0]}); with --read, "
        f"readers each paging the whole queue (default {DEFAULT_CONCURRENCY[1]}); with "
        f"--group, consumers sharing the group (default {DEFAULT_CONCURRENCY[2]})",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--read", action="store_true", help="read the queue back with `since` instead of posting"
    )
    mode.add_argument(
        "--group",
        metavar="G",
        help="consume with consumer group G (made if need be): claim --batch messages "
        "and acknowledge them, until the group has none left",
    )
    parser.add_argument(
        "--batch",
        type=_batch,
        metavar="B",
        help=f"messages per POST (default {DEFAULT_BATCH[0]}; more than 1 sends JSON batches);"
        f" with --read, messages per page (default {DEFAULT_BATCH[1]}); with --group, per"
        f" claim (default {DEFAULT_BATCH[2]})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@dataclass(frozen=True, slots=True)
class Options:
    """The resolved options of one run (mode-dependent defaults filled in)."""

    url: str
    app: str
    key: str
    queue: str
    create: bool
    consistency: str | None
    read: bool
    group: str | None
    messages: int | None
    size: int
    concurrency: int
    batch: int
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        mode = 1 if args.read else 2 if args.group else 0
        messages = args.messages
        if messages is None and mode == 0:
            messages = DEFAULT_POST_MESSAGES
        return cls(
            url=args.url.rstrip("/"),
            app=args.app,
            key=args.key,
            queue=args.queue,
            create=args.create,
            consistency=args.consistency,
            read=args.read,
            group=args.group,
            messages=messages,
            size=args.size,
            concurrency=args.concurrency or DEFAULT_CONCURRENCY[mode],
            batch=args.batch or DEFAULT_BATCH[mode],
            quiet=args.quiet,
        )

    @property
    def path(self) -> str:
        """The queue's path below the base URL."""
        return f"/v1/{self.app}/{self.queue}"


# -- measuring -------------------------------------------------------------------


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


class Progress:
    """A one-line progress bar, redrawn in place with ``\\r`` at most 10 times a second."""

    WIDTH = 30

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.total: int | None = None
        self.done = 0
        self.errors = 0
        self._started = time.perf_counter()
        self._drawn = 0.0
        self._last_width = 0
        self._shown = False

    def start(self, total: int | None) -> None:
        """Begin counting towards ``total`` messages (None: unknown, no bar)."""
        self.total = total
        self._started = time.perf_counter()
        self.draw()

    def advance(self, messages: int, errors: int = 0) -> None:
        """Count messages done (and failed requests) and redraw if it is time."""
        self.done += messages
        self.errors += errors
        now = time.perf_counter()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self.draw(now)

    def draw(self, now: float | None = None) -> None:
        """Redraw the line now."""
        if not self.enabled:
            return
        elapsed = max((now or time.perf_counter()) - self._started, 1e-9)
        rate = f"{self.done / elapsed:,.0f} msg/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * self.WIDTH)
            line = (
                f"[{bar:-<{self.WIDTH}}] {share:4.0%} {self.done}/{self.total} messages"
                f"  {rate}  errors {self.errors}"
            )
        else:
            line = f"{self.done} messages  {rate}  errors {self.errors}"
        pad = " " * max(0, self._last_width - len(line))
        self._last_width = len(line)
        self._shown = True
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line, if a line was begun."""
        if self._shown:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


# -- the load --------------------------------------------------------------------


def message_body(index: int, size: int) -> str:
    """Message ``index`` of a run: its number, padded with ``x`` to ``size`` bytes."""
    return f"{index}:".ljust(size, "x")[:size]


def _chunks(total: int, batch: int) -> Iterator[tuple[int, int]]:
    """(first message index, count) of each request."""
    for first in range(0, total, batch):
        yield first, min(batch, total - first)


def connect(options: Options) -> AsyncClient:
    """A client with one keep-alive connection to the server, sending the application key.

    Every worker has its own: one pool shared by many tasks costs httpx more
    than the requests themselves once tens of them wait on it (encode/httpx#3215).
    Retries are off: a load tester counts failures rather than hiding them.
    """
    return AsyncClient(
        options.url,
        app=options.app,
        key=options.key,
        timeout=TIMEOUT,
        retry=None,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


async def measured(results: Results, request: Awaitable[T]) -> T | None:
    """Await one request, counting it; its result, or None when it failed."""
    began = time.perf_counter()
    try:
        result = await request
    except ConnectionFailed as exc:
        results.failed(exc.cause if isinstance(exc.cause, Exception) else exc)
        return None
    except QueueyError as exc:
        results.answered(began, exc.status or 0, False)
        return None
    results.answered(began, 200, True)
    return result


async def post_all(options: Options, results: Results, progress: Progress) -> None:
    """Post the messages, ``options.concurrency`` requests in flight."""
    work = _chunks(options.messages or 0, options.batch)

    async def worker(queue: AsyncQueue) -> None:
        # One iterator shared by every worker: each takes the next request when it is free.
        for first, count in work:
            if options.batch == 1:
                posting: Awaitable[object] = queue.post(message_body(first, options.size))
            else:
                items = [
                    {"body": message_body(i, options.size)} for i in range(first, first + count)
                ]
                posting = queue.post_many(items)
            ok = await measured(results, posting) is not None
            results.messages += count if ok else 0
            progress.advance(count if ok else 0, 0 if ok else 1)

    await _each_with_a_client(options, worker)


async def read_all(
    options: Options,
    partitions: int,
    results: Results,
    progress: Progress,
) -> None:
    """Each reader pages every partition with ``since`` until it is exhausted."""

    async def reader(queue: AsyncQueue) -> None:
        seen: set[str] = set()
        budget = options.messages
        for partition in range(1, partitions + 1):
            since: str | None = None
            while budget is None or budget > 0:
                # since is inclusive: after the first page, ask for one more to make up for it.
                limit = min(options.batch + (since is not None), MAX_BATCH)
                page = await measured(
                    results, queue.read(since=since, limit=limit, partitions=[partition])
                )
                if page is None:
                    progress.advance(0, 1)
                    return
                fresh = page[1:] if page and page[0].message_id == since else page
                if budget is not None:
                    fresh = fresh[:budget]
                    budget -= len(fresh)
                for message in fresh:
                    if message.message_id in seen:
                        results.duplicates += 1
                    seen.add(message.message_id)
                results.messages += len(fresh)
                progress.advance(len(fresh))
                if len(page) < limit or not fresh:
                    break  # the end of this partition
                since = page[-1].message_id

    await _each_with_a_client(options, reader)


async def consume_all(options: Options, results: Results, progress: Progress) -> None:
    """Consumers claim and acknowledge until the group is drained (or the budget is spent)."""
    group = options.group or ""
    budget = options.messages
    seen: set[str] = set()

    async def consumer(queue: AsyncQueue) -> None:
        nonlocal budget
        handle = queue.group(group)
        while budget is None or budget > 0:
            # Single-threaded: take a share of the budget before waiting, give back the rest.
            take = options.batch if budget is None else min(options.batch, budget)
            if budget is not None:
                budget -= take
            batch: list[Delivery] | None = await measured(results, handle.claim(limit=take))
            if budget is not None:
                budget += take - len(batch or [])
            if not batch:
                progress.advance(0, 0 if batch is not None else 1)
                return
            acknowledged = await measured(results, handle.ack(batch)) is not None
            for delivery in batch:
                if delivery.message_id in seen:
                    results.duplicates += 1
                seen.add(delivery.message_id)
            done = len(batch) if acknowledged else 0
            results.messages += done
            progress.advance(done, 0 if acknowledged else 1)

    await _each_with_a_client(options, consumer)


async def _each_with_a_client(
    options: Options, work: Callable[[AsyncQueue], Awaitable[None]]
) -> None:
    """Run ``options.concurrency`` copies of ``work`` at once, each with its own connection."""

    async def one() -> None:
        async with connect(options) as client:
            await work(client.queue(options.queue))

    await asyncio.gather(*(one() for _ in range(options.concurrency)))


async def _queue_facts(queue: AsyncQueue) -> tuple[int, int | None]:
    """The queue's partitions and message count, when the key may list its application's queues.

    Otherwise (a key that only reads another application's queue) assume one
    partition and an unknown count.
    """
    try:
        settings = await queue.settings(count=True)
    except QueueyError:
        return 1, None
    return int(settings.get("partitions", 1)), settings.get("count")


async def _pending(queue: AsyncQueue, group: str) -> tuple[int | None, str | None]:
    """Make the group if need be; the messages it has to deliver, or a problem to report."""
    handle = queue.group(group)
    try:
        await handle.create()
    except ConnectionFailed as exc:
        return None, str(exc)
    except QueueyError:
        pass  # not the owner: the group must exist already, as the state tells
    try:
        state = await handle.state()
    except QueueyError as exc:
        return None, f"cannot use group {group}: {exc}"
    return sum(int(p.get("pending") or 0) for p in state.get("partitions") or []), None


async def _create(queue: AsyncQueue, options: Options) -> str | None:
    """Create the queue; return a problem to report, or None."""
    try:
        await queue.create(consistency=options.consistency)
    except ConnectionFailed as exc:
        return str(exc)
    except QueueyError as exc:
        return f"cannot create the queue: HTTP {exc.status} {exc}"
    return None


async def _run(options: Options, results: Results, progress: Progress) -> str | None:
    """Run the load; return a problem that stopped it before it began, or None."""
    async with connect(options) as client:
        queue = client.queue(options.queue)
        if options.create and (problem := await _create(queue, options)):
            return problem
        partitions = 1
        if options.group:
            pending, problem = await _pending(queue, options.group)
            if problem:
                return problem
            if pending is not None and options.messages is not None:
                pending = min(pending, options.messages)
            progress.start(pending)
        elif options.read:
            partitions, count = await _queue_facts(queue)
            if count is not None and options.messages is not None:
                count = min(count, options.messages)
            progress.start(None if count is None else count * options.concurrency)
        else:
            progress.start(options.messages)
    # Connecting is part of the load: each worker opens its connection as it starts.
    results.started = time.perf_counter()
    if options.group:
        await consume_all(options, results, progress)
    elif options.read:
        await read_all(options, partitions, results, progress)
    else:
        await post_all(options, results, progress)
    results.stop()
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``queuey bench`` with parsed arguments; return the exit status.

    0: every request succeeded; 1: some failed, or the queue could not be
    created; 130: interrupted (the summary covers what was done).
    """
    options = Options.from_args(args)
    results = Results()
    progress = Progress(sys.stderr, enabled=not options.quiet and sys.stderr.isatty())
    try:
        problem = asyncio.run(_run(options, results, progress))
    except KeyboardInterrupt:
        results.stop()
        progress.close()
        print(results.summary(options, interrupted=True))
        return 130
    progress.close()
    if problem:
        print(f"queuey bench: {problem}", file=sys.stderr)
        return 1
    print(results.summary(options))
    return 1 if results.errors else 0
