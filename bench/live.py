"""Live reading, measured (issue 11): idle held reads, open streams, POST-to-event latency.

One ``queuey serve`` (one worker, SQLite in a temporary folder) pinned to core
0 with ``taskset``; this process, the load, pinned to core 1. Raw sockets on
asyncio, so the client costs little per connection.

Each part runs on a fresh server.

1. ``--held`` (5,000) range reads with ``wait=60`` on one queue, all held: the
   server's RSS before and with them, and its CPU while they are idle
   (``--idle`` seconds); then one post answers them all (how long until the
   last answer).
2. ``--streams`` (2,000) event streams of another queue: the server's RSS per
   stream, its CPU while idle; then ``--posts`` messages at ``--rate`` a
   second, each carrying its send time: POST-to-event latency over every
   (stream, message) pair, p50 and p99.

Bounded: about a minute in all with the defaults. The machine may be shared
(the background load is printed); the figures are this run's, not a promise.

    .venv/bin/python -m bench.live [--held 5000] [--streams 2000] [--posts 40]
    make bench-live
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.machine import CpuMeter, background_cores, describe
from bench.servers import Fleet, Server

APP, KEY = "queuey", "f25bfb8fe200475c8a0532a9cbe7651e"
AUTH = {"Authorization": f"Application {KEY}"}
#: Connections opened at once while opening thousands.
OPENING = 200


def request(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Application {KEY}\r\n\r\n"
    ).encode()


def gauge(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/__metrics__", timeout=10).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(found[1]) if found else 0.0


async def wait_for_gauge(server: Server, name: str, value: float, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while gauge(server, name) < value:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not reach {value} in {limit} s")
        await asyncio.sleep(0.5)


async def connect_all(
    port: int, path: str, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    gate = asyncio.Semaphore(OPENING)

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            writer.write(request(path))
            await writer.drain()
            return reader, writer

    return await asyncio.gather(*(one() for _ in range(count)))


async def answered(reader: asyncio.StreamReader) -> float:
    """Read one whole answer (headers and a Content-Length body); when it ended."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I)[1])  # type: ignore[index]
    await reader.readexactly(length)
    return time.monotonic()


def cpu_while_idle(server: Server, seconds: float) -> float:
    meter = CpuMeter(server.pids())
    time.sleep(seconds)
    return meter.stop().server


async def held_reads(server: Server, count: int, idle: float) -> dict[str, float]:
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        http.post(f"/v1/{APP}", json={"queue_name": "held"}).raise_for_status()
    before = server.rss_mb()
    conns = await connect_all(server.port, f"/v1/{APP}/held?wait=60", count)
    await wait_for_gauge(server, "queuey_held_reads", count)
    with_them = server.rss_mb()
    cpu = await asyncio.to_thread(cpu_while_idle, server, idle)
    waiting = [asyncio.ensure_future(answered(r)) for r, _ in conns]
    posted = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as poster:
        (await poster.post(f"/v1/{APP}/held", content=b"wake")).raise_for_status()
    ends = await asyncio.gather(*waiting)
    for _, writer in conns:
        writer.close()
    return {
        "rss_before_mb": before,
        "rss_held_mb": with_them,
        "kb_per_held_read": (with_them - before) * 1000 / count,
        "idle_cpu_cores": cpu,
        "all_answered_s": max(ends) - posted,
    }


async def streams(
    server: Server, count: int, idle: float, posts: int, rate: float
) -> dict[str, float]:
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        http.post(f"/v1/{APP}", json={"queue_name": "live"}).raise_for_status()
    before = server.rss_mb()
    conns = await connect_all(server.port, f"/v1/{APP}/live/stream", count)
    await wait_for_gauge(server, "queuey_open_streams", count)
    with_them = server.rss_mb()
    cpu = await asyncio.to_thread(cpu_while_idle, server, idle)
    latencies: list[float] = []

    sent = re.compile(rb'"body":"sent ([0-9.]+)"')

    async def follow(reader: asyncio.StreamReader) -> None:
        seen, tail = 0, b""
        while seen < posts:
            chunk = await reader.read(65536)  # whole chunks: the client must not be the bottleneck
            if not chunk:
                return
            now = time.time()
            # Chunked framing aside, an event's data line carries the send time as its body.
            text = tail + chunk
            for found in sent.finditer(text):
                latencies.append(now - float(found[1]))
                seen += 1
            tail = text[text.rfind(b"\n\n") + 2 :]  # an event cut short: its start

    following = [asyncio.ensure_future(follow(r)) for r, _ in conns]
    meter = CpuMeter(server.pids())
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as poster:
        for _ in range(posts):
            body = f"sent {time.time():.6f}".encode()
            (await poster.post(f"/v1/{APP}/live", content=body)).raise_for_status()
            await asyncio.sleep(1 / rate)
    await asyncio.wait(following, timeout=30)
    share = meter.stop()
    for task in following:
        task.cancel()
    for _, writer in conns:
        writer.close()
    ordered = sorted(latencies)
    return {
        "rss_before_mb": before,
        "rss_streams_mb": with_them,
        "kb_per_stream": (with_them - before) * 1000 / count,
        "idle_cpu_cores": cpu,
        "busy_server_cores": share.server,
        "busy_other_cores": share.other,
        "events": len(ordered),
        "events_expected": count * posts,
        "latency_p50_ms": statistics.median(ordered) * 1000 if ordered else float("nan"),
        "latency_p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else float("nan"),
        "latency_max_ms": ordered[-1] * 1000 if ordered else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held", type=int, default=5000)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0, help="posts a second")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds measured idle")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the load on core 1; the server on core 0
    print("# Live reading (bench/live.py)")
    print("command: .venv/bin/python -m bench.live " + " ".join(sys.argv[1:]))
    for line in describe():
        print(line)
    print(f"background load before the run: {background_cores(2.0):.2f} cores (machine shared)")
    with (
        tempfile.TemporaryDirectory(prefix="queuey-live-") as work,
        Fleet(Path(work), "0") as fleet,
    ):
        server = fleet.queuey("held", f"sqlite:///{work}/held.db", APP, KEY)
        print(f"server: {server.shell}")
        held = asyncio.run(held_reads(server, args.held, args.idle))
        print(f"\n## {args.held} idle held reads (wait=60), one process")
        for name, value in held.items():
            print(f"{name}: {value:.3f}")
        fleet.stop_all()  # a fresh server: memory the held reads freed would hide the streams'
        server = fleet.queuey("streams", f"sqlite:///{work}/streams.db", APP, KEY)
        live = asyncio.run(streams(server, args.streams, args.idle, args.posts, args.rate))
        print(f"\n## {args.streams} open streams, {args.posts} posts at {args.rate}/s")
        for name, value in live.items():
            print(f"{name}: {value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
