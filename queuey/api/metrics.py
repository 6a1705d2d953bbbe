"""Metrics (SPEC §9): counters and histograms, served as Prometheus text at ``/__metrics__``.

granian's workers are separate processes, and a scrape reaches one of them.
``queuey serve`` therefore sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh
directory before the workers start (``queuey.cli``): prometheus-client then
keeps every process's values in files there, and a scrape sums the files of
all workers. Without it (the app in-process, as in tests) each app keeps its
own registry. Gauges of workers that died are dropped at the next scrape.

Requests are tallied in memory and written to the series by :meth:`Metrics.flush`
— every second (the app's sampler), before each scrape of this process and at
shutdown — not one by one: in multiprocess mode every increment is a locked
write to a memory-mapped file, and the six of a request cost about 6 µs, a
twentieth of a whole GET. A scrape may so miss another worker's last second.

Group lag is not a series: a group's pending count is a count of the queue
after its cursor, per partition, which costs a read of the backlog; the
cheap figures are exported instead (messages delivered, acknowledged and
leases lost), and ``GET .../groups/{group}`` tells one group's lag.
"""

from __future__ import annotations

import bisect
import glob
import os
import re
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Methods counted by name; any other is counted as "other" (label values stay few).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
COMMIT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
COMMIT_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_LIVE_GAUGE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


class Metrics:
    """The series of one process, and their rendering for a scrape."""

    content_type = CONTENT_TYPE_LATEST.encode()

    def __init__(self) -> None:
        self.directory = os.environ.get(MULTIPROC_ENV) or None
        # Multiprocess values go to files, not to a registry; else this app's own registry.
        self.registry = None if self.directory else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "queuey_requests", "Requests answered.", ["route", "method", "status"], registry=r
        )
        self.duration = Histogram(
            "queuey_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "queuey_requests_in_progress",
            "Requests being answered now.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.held = Gauge(
            "queuey_held_reads",
            "Requests waiting for messages now (range reads and consumer group claims with wait).",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.streams = Gauge(
            "queuey_open_streams",
            "Event streams (SSE) open now.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.messages = {
            event: Counter(f"queuey_messages_{event}", help, ["application"], registry=r)
            for event, help in (
                ("posted", "Messages stored by POST and by acknowledge-and-publish."),
                ("read", "Messages returned by range reads and reads by id."),
                ("delivered", "Messages handed out by consumer group claims."),
                ("acknowledged", "Messages acknowledged in consumer groups."),
            )
        }
        self.leases_lost = Counter(
            "queuey_leases_lost",
            "Receipts refused as lost in acknowledgements, releases and extensions.",
            ["application"],
            registry=r,
        )
        self.storage_errors = Counter(
            "queuey_storage_errors", "Answers 503 StorageUnavailable.", registry=r
        )
        self.commit_jobs = Histogram(
            "queuey_sqlite_commit_jobs",
            "Writes committed together in one SQLite transaction (group commit size).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "queuey_sqlite_commit_seconds",
            "Time of a SQLite COMMIT; with fsync=true, the time the fsync took.",
            ["fsync"],
            buckets=COMMIT_SECONDS,
            registry=r,
        )
        self.purged_rows = Counter(
            "queuey_purged_rows",
            "Rows the background purge deleted (expired messages and keys, deleted queues).",
            registry=r,
        )
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[str, Any] = {}
        self._counts: dict[tuple[str, str], Any] = {}
        #: Requests being answered now (written to ``in_progress`` by :meth:`flush`).
        self.active = 0
        # Tallies since the last flush: answers by (route, method, status); per route the
        # sum of durations, then a count per bucket of DURATION_BUCKETS and one for +Inf;
        # messages by (event, application).
        self._answered: dict[tuple[str, str, int], int] = {}
        self._timed: dict[str, list[float]] = {}
        self._counted: dict[tuple[str, str], int] = {}
        self._commits = {True: self.commit_seconds.labels("true"),
                         False: self.commit_seconds.labels("false")}  # fmt: skip

    # -- recording ---------------------------------------------------------------

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered (or given up: status 499); tallied until :meth:`flush`."""
        method = method if method in METHODS else "other"
        key = (route, method, status)
        self._answered[key] = self._answered.get(key, 0) + 1
        tally = self._timed.get(route)
        if tally is None:
            tally = self._timed[route] = [0.0] * (len(DURATION_BUCKETS) + 2)
        tally[0] += seconds
        # The first bucket whose bound is at least ``seconds``, as Histogram.observe.
        tally[1 + bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1

    def count(self, event: str, application: str, number: int) -> None:
        """``number`` messages ``posted``, ``read``, ``delivered`` or ``acknowledged``."""
        if number:
            key = (event, application)
            self._counted[key] = self._counted.get(key, 0) + number

    def flush(self) -> None:
        """Write the tallies to the series (see the module's docstring)."""
        self.in_progress.set(self.active)
        answered, self._answered = self._answered, {}
        for key, number in answered.items():
            counter = self._requests.get(key)
            if counter is None:  # labels() costs more than the increment: once per key
                route, method, status = key
                counter = self._requests[key] = self.requests.labels(route, method, str(status))
            counter.inc(number)
        timed, self._timed = self._timed, {}
        for route, tally in timed.items():
            histogram = self._durations.get(route)
            if histogram is None:
                histogram = self._durations[route] = self.duration.labels(route)
            # What observe() does for each duration, once per bucket (prometheus-client
            # 0.26's Histogram: _sum and _buckets; tests/test_observability.py checks).
            histogram._sum.inc(tally[0])
            for bucket, seen in zip(histogram._buckets, tally[1:], strict=True):
                if seen:
                    bucket.inc(seen)
        counted, self._counted = self._counted, {}
        for (event, application), number in counted.items():
            counter = self._counts.get((event, application))
            if counter is None:
                counter = self._counts[(event, application)] = self.messages[event].labels(
                    application
                )
            counter.inc(number)

    def lost(self, application: str, number: int) -> None:
        if number:
            self.leases_lost.labels(application).inc(number)

    def storage_error(self) -> None:
        self.storage_errors.inc()

    def commit(self, jobs: int, fsync: bool, seconds: float) -> None:
        """After each SQLite transaction (called on the writer's thread)."""
        self.commit_jobs.observe(jobs)
        self._commits[fsync].observe(seconds)

    def purged(self, rows: int) -> None:
        if rows > 0:
            self.purged_rows.inc(rows)

    # -- scraping ----------------------------------------------------------------

    def render(self) -> bytes:
        """Every series in Prometheus text, summed over the workers in multiprocess mode."""
        self.flush()
        if self.registry is not None:
            return generate_latest(self.registry)
        assert self.directory is not None
        _forget_dead(self.directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _forget_dead(directory: str) -> None:
    """Drop the live gauges of processes gone (a worker that crashed and was replaced)."""
    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        found = _LIVE_GAUGE.search(os.path.basename(path))
        if found is None:
            continue
        pid = int(found[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's
