"""A run of ``queuey bench``: make the queue or group ready, load it, print the summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from queuey.bench.load import connect, consume_all, post_all, read_all
from queuey.bench.options import Options
from queuey.bench.progress import Progress
from queuey.bench.results import Results
from queuey.client import AsyncQueue, ConnectionFailed, QueueyError


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
