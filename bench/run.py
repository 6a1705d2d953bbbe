"""``make bench``: measure Queuey against a bare baseline and write BENCHMARKS.md.

Servers run pinned to core 0 (``taskset -c 0``), the load generator (wrk) to
core 1, so they do not fight for one core. Every figure is the median of
``RUNS`` runs, and targets are ratios measured in the same run. Set
``BENCH_QUICK=1`` for a short smoke run (1 run of 2 s, 10,000 instead of
1,000,000 queues).
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import lua
from bench.servers import Running, baseline, cassandra_runner, prefill_sqlite, queuey
from bench.wrk import Figures, ensure_wrk, wrk

ROOT = Path(__file__).resolve().parent.parent

QUICK = bool(os.environ.get("BENCH_QUICK"))
RUNS = 1 if QUICK else 3
SECONDS = 2 if QUICK else 5
MANY = 10_000 if QUICK else 1_000_000
CONNECTIONS = 64


class Report:
    """Collects rows and notes, then renders BENCHMARKS.md."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.targets: list[tuple[str, str, str, str]] = []
        self.commands: list[str] = []
        self.notes: list[str] = []

    def add(self, name: str, figures: Figures, unit: str = "req/s", scale: float = 1.0) -> None:
        self.rows.append(
            (
                name,
                f"{figures.rps * scale:,.0f} {unit}",
                f"{figures.p50:.2f}",
                f"{figures.p99:.2f}",
                f"{figures.errors}",
            )
        )

    def target(self, name: str, goal: str, measured: str, met: bool) -> None:
        self.targets.append((name, goal, measured, "met" if met else "**missed**"))

    def render(self, machine: str, versions: str) -> str:
        lines = [
            "# Benchmarks",
            "",
            "Written by `make bench` (bench/run.py); do not edit by hand. "
            f"{'QUICK run (BENCH_QUICK=1): 1 run of 2 s, 10,000 queues. ' if QUICK else ''}"
            f"Each figure is the median of {RUNS} wrk run(s) of {SECONDS} s with "
            f"{CONNECTIONS} keep-alive connections; the server runs on core 0 "
            "(`taskset -c 0`), wrk on core 1. Compare figures as ratios within this run: "
            "the machine is shared and noisy.",
            "",
            "## Machine and versions",
            "",
            machine,
            "",
            versions,
            "",
            "## Targets (SQLite, one server process)",
            "",
            "| target | goal | measured | |",
            "| --- | --- | --- | --- |",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.targets],
            "",
            "## Figures",
            "",
            "| scenario | throughput | p50 ms | p99 ms | errors |",
            "| --- | --- | --- | --- | --- |",
            *[f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in self.rows],
            "",
            "## Notes",
            "",
            *[f"- {n}" for n in self.notes],
            "",
            "## Commands",
            "",
            "```",
            *self.commands,
            "```",
            "",
        ]
        return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"- {cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB, "
        f"{platform.system()} {platform.release()}"
    )


def versions() -> str:
    from importlib.metadata import version

    wrk_version = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return (
        f"- Python {platform.python_version()}, granian {version('granian')}, "
        f"Starlette {version('starlette')}, msgspec {version('msgspec')}, "
        f"SQLite {sqlite3.sqlite_version}, cassandra-driver {version('cassandra-driver')}, "
        f"Cassandra {cassandra_runner().CASSANDRA_VERSION}, "
        f"{wrk_version[0] if wrk_version else 'wrk'}"
    )


def median(measure: Callable[[], Figures]) -> Figures:
    """Run ``measure`` RUNS times; the median of each figure."""
    runs = [measure() for _ in range(RUNS)]
    return Figures(
        rps=statistics.median(r.rps for r in runs),
        p50=statistics.median(r.p50 for r in runs),
        p99=statistics.median(r.p99 for r in runs),
        errors=sum(r.errors for r in runs),
    )


def load(report: Report, server: Running, script: Path, path: str) -> Figures:
    url = f"{server.url}{path}"
    report.commands.append(
        f"taskset -c 1 wrk -t1 -c{CONNECTIONS} -d{SECONDS}s --latency -s {script.name} {url}"
    )
    return median(lambda: wrk(url, script, SECONDS, CONNECTIONS))


def sqlite_section(report: Report, work: Path) -> float:
    """Baseline, single and batch posts, reads, mixed load. Returns the weak POST rate."""
    post = lua.post(work, "k1")
    get = lua.get(work, "k1")
    batch = lua.batch(work, "k1", 100)

    with baseline(work) as base:
        report.commands.insert(0, "taskset -c 0 granian --interface asgi bench.baseline_app:app")
        bare = load(report, base, post, "/v1/app/q")
    report.add("bare baseline (granian + Starlette, constant JSON)", bare)

    with queuey(work, f"sqlite:///{work / 'main.db'}", "k1") as server:
        report.commands.insert(1, "taskset -c 0 queuey serve --config bench.toml")
        server.create("weak", "weak")
        server.create("strong", "strong")
        weak = load(report, server, post, "/v1/app/weak")
        strong = load(report, server, post, "/v1/app/strong")
        batched = load(report, server, batch, "/v1/app/weak")
        read10 = load(report, server, get, "/v1/app/weak?limit=10")
        read100 = load(report, server, get, "/v1/app/weak?limit=100")
        half = weak.rps / 2
        mixed_script = lua.mixed(work, "k1", half, CONNECTIONS)
        mixed = load(report, server, mixed_script, "/v1/app/weak")
    report.add("POST one 140-byte message, weak queue", weak)
    report.add("POST one 140-byte message, strong queue (fsynced)", strong)
    report.add("POST batch of 100 messages, weak (messages/s)", batched, "msg/s", 100)
    report.add("GET range, limit 10", read10)
    report.add("GET range, limit 100", read100)
    report.add(f"mixed POST/GET at half the POST maximum ({half:,.0f} req/s offered)", mixed)

    report.target(
        "single POST vs bare baseline", ">= 50%", f"{weak.rps / bare.rps:.0%}",
        weak.rps >= 0.5 * bare.rps,
    )  # fmt: skip
    report.target(
        "strong POST vs weak POST", ">= 80%", f"{strong.rps / weak.rps:.0%}",
        strong.rps >= 0.8 * weak.rps,
    )  # fmt: skip
    report.target(
        "batch POST", ">= 150,000 msg/s", f"{batched.rps * 100:,.0f} msg/s",
        batched.rps * 100 >= 150_000,
    )  # fmt: skip
    report.target(
        "GET limit 10 vs bare baseline", ">= 50%", f"{read10.rps / bare.rps:.0%}",
        read10.rps >= 0.5 * bare.rps,
    )  # fmt: skip
    report.target(
        "p99 at half the maximum rate", "<= 10 ms", f"{mixed.p99:.2f} ms", mixed.p99 <= 10
    )
    return weak.rps


def many_queues_section(report: Report, work: Path) -> None:
    """POST and GET with 1,000 and with MANY queues in the store."""
    results: dict[int, tuple[Figures, Figures, float]] = {}
    for count in (1_000, MANY):
        db = work / f"many-{count}.db"
        began = time.perf_counter()
        prefill_sqlite(db, "app", count)
        report.notes.append(
            f"Filled a SQLite file with {count:,} queues directly in "
            f"{time.perf_counter() - began:.1f} s (bench/servers.py prefill_sqlite)."
        )
        post = lua.post_random(work, "k1", count)
        get = lua.get_random(work, "k1", count)
        with queuey(work, f"sqlite:///{db}", "k1") as server:
            posted = load(report, server, post, "/")
            read = load(report, server, get, "/")
            rss = server.rss_mb()
        results[count] = (posted, read, rss)
        report.add(f"POST to a random one of {count:,} queues", posted)
        report.add(f"GET limit 10 from a random one of {count:,} queues", read)
        report.notes.append(f"Server resident memory with {count:,} queues: {rss:.0f} MB.")
    small_post, small_read, _ = results[1_000]
    big_post, big_read, big_rss = results[MANY]
    label = f"{MANY:,} queues"
    report.target(
        f"{label}: POST throughput vs 1,000 queues", ">= 90%",
        f"{big_post.rps / small_post.rps:.0%}", big_post.rps >= 0.9 * small_post.rps,
    )  # fmt: skip
    report.target(
        f"{label}: GET throughput vs 1,000 queues", ">= 90%",
        f"{big_read.rps / small_read.rps:.0%}", big_read.rps >= 0.9 * small_read.rps,
    )  # fmt: skip
    report.target(
        f"{label}: POST p99 vs p50", "<= 3x", f"{big_post.p99 / max(big_post.p50, 1e-9):.1f}x",
        big_post.p99 <= 3 * big_post.p50,
    )  # fmt: skip
    report.target(f"{label}: resident memory", "<= 200 MB", f"{big_rss:.0f} MB", big_rss <= 200)


def cassandra_section(report: Report, work: Path, sqlite_weak: float) -> None:
    """POST and GET on one Cassandra node, as ratios to SQLite in this run; many queues."""
    runner = cassandra_runner()
    if not (shutil.which("java") and shutil.which("mvn")):
        report.notes.append("Cassandra skipped: java and mvn are needed (scripts/cassandra.py).")
        return
    already = runner.is_up(1)
    if not already:
        runner.start(nodes=1)
    try:
        keyspace = f"bench_{int(time.time())}"
        url = f"cassandra://127.0.0.1/{keyspace}?replication=1"
        post = lua.post(work, "k1")
        get = lua.get(work, "k1")
        with queuey(work, url, "k1") as server:
            server.create("weak", "weak")
            server.create("strong", "strong")
            weak = load(report, server, post, "/v1/app/weak")
            strong = load(report, server, post, "/v1/app/strong")
            read10 = load(report, server, get, "/v1/app/weak?limit=10")
        report.add("Cassandra (1 node): POST one message, weak (ONE)", weak)
        report.add("Cassandra (1 node): POST one message, strong (QUORUM)", strong)
        report.add("Cassandra (1 node): GET range, limit 10", read10)
        report.notes.append(
            f"Cassandra weak POST is {weak.rps / sqlite_weak:.0%} of SQLite weak POST in this run "
            "(server and Cassandra share core 0 and the machine's 2 cores)."
        )
        from bench.cassandra_many import many_queues

        for line in many_queues(url, MANY if not QUICK else 10_000):
            report.notes.append(line)
    finally:
        if not already:
            runner.stop()


def main() -> int:
    ensure_wrk()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="queuey-bench-") as tmp:
        work = Path(tmp)
        weak = sqlite_section(report, work)
        many_queues_section(report, work)
        cassandra_section(report, work, weak)
        text = report.render(machine(), versions())
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
