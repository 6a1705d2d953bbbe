"""What a request costs Queuey itself: CPU per request in-process, with no server around it.

``make bench`` measures Queuey behind granian and wrk, where the server, the
kernel's TCP and the load generator share the figures. This calls the ASGI app
directly (a scope, a receive and a send in memory) on a SQLite file, with
``concurrency`` requests in flight on one event loop, and divides the
process's CPU time (all its threads: the event loop's and SQLite's writer)
by the requests answered. So it shows what Queuey's own code costs, the
figure to cut when a target of BENCHMARKS.md is missed, and how that cost
splits (``--profile`` runs one scenario under cProfile, timing the CPU of the
event loop's thread, and prints the top).

Scenarios: ``lbheartbeat`` (the HTTP layer alone: observer, router,
metrics), ``get-1`` and ``get-10`` (a range read of 1 and 10 messages),
``post`` (one 140-byte message, weak queue), ``batch`` (100 of them),
``claim-ack`` (claim 100 of a group, acknowledge them; per message). The
access log is off (as ``[server] access_log = false``); metrics are on, in
multiprocess mode as under ``queuey serve``.

    .venv/bin/python -m bench.inprocess [--requests 6400] [--only get-10] [--profile post]

The machine may be busy: run it twice, and compare scenarios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from bench.groups import fill

BODY = b"x" * 140
BATCH = msgspec.json.encode({"messages": [{"body": "x" * 140} for _ in range(100)]})
#: queuey.api.metrics.MULTIPROC_ENV, not imported from there: prometheus-client picks its
#: mode when first imported, so the variable must be set before anything imports it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCENARIOS = ("lbheartbeat", "get-1", "get-10", "post", "batch", "claim-ack")
_decode = msgspec.json.Decoder().decode


class InProcess:
    """The app of one SQLite file, called with requests built in memory."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        query: bytes = b"",
        json: bool = False,
        form: bool = False,
    ) -> tuple[int, bytes]:
        kind = b"application/json" if json else b"text/plain"
        headers = [
            (b"authorization", b"Application key"),
            (b"content-type", b"application/x-www-form-urlencoded" if form else kind),
            (b"content-length", str(len(body)).encode()),
            (b"host", b"bench"),
        ]
        scope = {
            "type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": query, "headers": headers, "http_version": "1.1",
            "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
            "root_path": "",
        }  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        status, answer = sent[0]["status"], sent[1]["body"]
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {answer[:200]!r}")
        return status, answer


def _scenario(client: InProcess, name: str) -> tuple[Callable[[], Awaitable[int]], str]:
    """One request of ``name`` (returning how many units it did) and its unit."""

    async def lbheartbeat() -> int:
        await client.call("GET", "/__lbheartbeat__")
        return 1

    async def get(limit: int) -> int:
        await client.call("GET", "/v1/bench/read", query=b"limit=%d" % limit)
        return 1

    async def post() -> int:
        await client.call("POST", "/v1/bench/weak", BODY)
        return 1

    async def batch() -> int:
        await client.call("POST", "/v1/bench/weak", BATCH, json=True)
        return 1

    async def claim_ack() -> int:
        group = "/v1/bench/work/groups/g"
        _, answer = await client.call("POST", f"{group}/claim", b'{"limit":100}', json=True)
        receipts = [m["receipt"] for m in _decode(answer)["messages"]]
        await client.call(
            "POST", f"{group}/ack", msgspec.json.encode({"receipts": receipts}), json=True
        )
        return len(receipts)

    found: dict[str, tuple[Callable[[], Awaitable[int]], str]] = {
        "lbheartbeat": (lbheartbeat, "request"),
        "get-1": (lambda: get(1), "request"),
        "get-10": (lambda: get(10), "request"),
        "post": (post, "request"),
        "batch": (batch, "request of 100"),
        "claim-ack": (claim_ack, "message"),
    }
    return found[name]


async def _drive(
    request: Callable[[], Awaitable[int]], count: int, concurrency: int
) -> tuple[int, float, float]:
    """``count`` requests, ``concurrency`` at a time: (units, CPU seconds, wall seconds)."""
    units = 0

    async def worker(share: int) -> None:
        nonlocal units
        for _ in range(share):
            done = await request()  # not ``units += await ...``: that reads units first
            units += done

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    return units, time.process_time() - cpu, time.perf_counter() - wall


async def run(folder: Path, names: list[str], count: int, concurrency: int, profile: str) -> None:
    from queuey.api.app import create_app  # once MULTIPROC_ENV is set (see above)
    from queuey.config import Settings

    db = folder / "bench.db"
    # The group's queue is filled straight into the file, as make bench fills it.
    fill(db, "bench", {"work": 200 * count + 20_000}, len(BODY))
    settings = Settings(
        storage_url=f"sqlite:///{db}", application_keys={"bench": ("key",)}, access_log=False
    )
    app = create_app(settings)
    async with app.lifespan():
        client = InProcess(app)
        form = b"queue_name=%s&consistency=weak"
        for queue in (b"weak", b"read"):
            await client.call("POST", "/v1/bench", form % queue, form=True)
        await client.call("POST", "/v1/bench/read", BATCH, json=True)
        group = b'{"guarantee":"at_least_once","lease_seconds":5}'
        await client.call("PUT", "/v1/bench/work/groups/g", group, json=True)
        print(f"{count:,} requests each, {concurrency} in flight; CPU of this process per unit")
        for name in names:
            request, unit = _scenario(client, name)
            many = max(concurrency, count // 10 if unit != "request" else count)
            await _drive(request, concurrency * 4, concurrency)  # warm up
            units, cpu, wall = await _drive(request, many, concurrency)
            print(
                f"  {name:12} {cpu / units * 1e6:8.1f} µs CPU per {unit}"
                f"  ({units / wall:,.0f} {unit.split()[0]}s/s wall)"
            )
            if name == profile:
                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
                await _drive(request, many, concurrency)
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--requests", type=int, default=6400)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    parser.add_argument("--profile", choices=SCENARIOS, default="")
    args = parser.parse_args(argv)
    if args.requests < args.concurrency:
        parser.error("--requests must be at least --concurrency")
    before = os.environ.get(MULTIPROC_ENV)
    with tempfile.TemporaryDirectory(prefix="queuey-inprocess-") as folder:
        # Metrics as under queuey serve: in files of a directory, set before the app exists.
        metrics = Path(folder) / "metrics"
        metrics.mkdir()
        os.environ[MULTIPROC_ENV] = str(metrics)
        try:
            asyncio.run(
                run(Path(folder), args.only or list(SCENARIOS), args.requests, args.concurrency,
                    args.profile)
            )  # fmt: skip
        finally:  # the directory goes with this run: leave the caller's environment as it was
            if before is None:
                del os.environ[MULTIPROC_ENV]
            else:
                os.environ[MULTIPROC_ENV] = before
    return 0


if __name__ == "__main__":
    sys.exit(main())
