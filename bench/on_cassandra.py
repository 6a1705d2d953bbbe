"""Queuey on one local Cassandra node (skipped with ``BENCH_CASSANDRA=0``).

The node comes from scripts/cassandra_runner (java and mvn needed); one already
running is reused and left running. Throughput is for orientation only: the
node shares the machine's two cores with the server and wrk. What is a target
(issue 13) is the web node's CPU per message: the CPU seconds of Queuey's
process alone (its user + system time, /proc/PID/stat; not Cassandra's JVM)
per 10,000 POSTs and per 10,000 messages read, at most twice what the same
requests cost Queuey on SQLite in this run (One server). A node that cannot be
started, or fails while measured, leaves those targets "not measured" with
the reason, and the rest of BENCHMARKS.md is written as usual.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
from cassandra import DriverException
from cassandra.cluster import NoHostAvailable

from bench import fill
from bench.harness import APP, KEY, SIZE, Harness, Scenario, rows
from bench.report import figure_table
from bench.servers import Fleet
from scripts import cassandra_runner

TITLE = "One Cassandra node"
#: The CPU targets: (name, SQLite scenario, Cassandra scenario, what 10,000 counts).
COSTS = (
    ("POST one message, weak (Cassandra: ONE)", "post-weak", "cassandra-post-weak",
     "10,000 POSTs"),
    ("GET a range, limit 10", "read-10", "cassandra-read-10", "10,000 messages read"),
)  # fmt: skip
#: Shown beside them, for information: strong POSTs.
STRONG = ("POST one message, strong (Cassandra: QUORUM)", "post-strong", "cassandra-post-strong",
          "10,000 POSTs")  # fmt: skip
LIMIT = 2.0
#: What measuring on Cassandra may raise without failing the whole bench.
FAILURES = (
    RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError, DriverException,
    NoHostAvailable,
)  # fmt: skip


def target_name(counted: str) -> str:
    return f"one Cassandra node: web node CPU per {counted} vs SQLite"


def not_measured(bench: Harness, reason: str) -> None:
    """The CPU targets, each recorded as not measured, with ``reason``."""
    for _, _, _, counted in COSTS:
        bench.target(target_name(counted), f"<= {LIMIT:g}x", "", False, None,
                     why=f"not measured: {reason}", measured=False)  # fmt: skip


def measure(bench: Harness) -> None:
    """POST (weak, strong) and GET limit 10 on one node, CPU per message, then many queues."""
    if not (shutil.which("java") and shutil.which("mvn")):
        reason = "java and mvn are needed (scripts/cassandra_runner)"
        bench.report.note(f"Cassandra skipped: {reason}.")
        not_measured(bench, reason)
        return
    already = cassandra_runner.is_up(1)
    if already:
        running = "; ".join(cassandra_runner.status())
        bench.report.note(
            f"Cassandra: the node(s) already running were used and left running ({running});"
            " another user of them may have loaded or restarted them meanwhile."
        )
    else:
        bench.log("starting one Cassandra node")
        try:
            cassandra_runner.start(nodes=1)
        except FAILURES as exc:
            reason = f"the Cassandra node did not start: {str(exc)[:500]}"
            bench.log(reason)
            bench.report.note(f"Cassandra skipped: {reason}")
            not_measured(bench, reason)
            _stop(bench)
            return
        bench.report.note(
            "Cassandra: one node started by the bench (scripts/cassandra_runner), stopped after."
        )
    try:
        url = f"cassandra://127.0.0.1/bench_{int(time.time())}?replication=1"
        with Fleet(bench.settings.work, bench.server_cores) as fleet:
            scenarios = _figures(bench, fleet, url)
            bench.report.section(TITLE, section(bench, scenarios))
            targets(bench)
            bench.profiles()
        from bench.cassandra_many import many_queues

        count = bench.settings.queues[-1]
        for line in many_queues(url, count):
            bench.report.note(line)
    except FAILURES as exc:
        reason = f"Cassandra failed while measuring: {type(exc).__name__}: {str(exc)[:500]}"
        bench.log(reason)
        bench.report.note(reason)
        if not any(t.name == target_name(COSTS[0][3]) for t in bench.report.targets):
            not_measured(bench, reason)
    finally:
        if not already:
            _stop(bench)


def _stop(bench: Harness) -> None:
    try:
        cassandra_runner.stop()
    except FAILURES as exc:
        bench.report.note(f"Stopping the Cassandra node failed: {exc}")


def _figures(bench: Harness, fleet: Fleet, url: str) -> list[Scenario]:
    server = fleet.queuey("queuey-cassandra", url, APP, KEY)
    bench.report.server("Queuey (one Cassandra node)", server.shell)
    fill.create_queue(server.url, APP, KEY, "weak", "weak")
    fill.create_queue(server.url, APP, KEY, "strong", "strong")
    fill.post_messages(server.url, APP, KEY, "weak", 1000, SIZE)
    post = (f"size={SIZE}", "method=POST")
    scenarios = [
        bench.scenario("cassandra-post-weak", "Cassandra: POST one message, weak (ONE)",
                       server, bench.load(server, f"/v1/{APP}/weak", "static.lua", *post)),
        bench.scenario("cassandra-post-strong",
                       "Cassandra: POST one message, strong (QUORUM)", server,
                       bench.load(server, f"/v1/{APP}/strong", "static.lua", *post)),
        bench.scenario("cassandra-read-10", "Cassandra: GET a range, limit 10", server,
                       bench.load(server, f"/v1/{APP}/weak?limit=10", "static.lua"),
                       per_request=10),
    ]  # fmt: skip
    bench.measure(scenarios)
    bench.report.memory("Queuey (one Cassandra node)", server.rss_mb(), server.peak_rss_mb())
    return scenarios


def per_10k(scenario: Scenario) -> float:
    """Server CPU seconds per 10,000 of what it counts: requests, or messages when batched."""
    return scenario.cpu_per_request / scenario.per_request * 10_000


def section(bench: Harness, scenarios: list[Scenario]) -> list[str]:
    """The figures, then the web node's CPU per message beside SQLite's."""
    out = [
        "Requests/s here are for orientation only: the node's JVM shares the machine's two"
        " cores with the server (on its core, as for SQLite) and wrk. The web node's CPU per"
        " message is a target (issue 13).",
        "",
        *figure_table(rows(scenarios), "requests/s"),
        "",
        "Web node CPU: the CPU seconds (user + system, from /proc/PID/stat before and after"
        " each run) of Queuey's process alone, not Cassandra's JVM, divided by what it"
        " answered; the median over the runs. SQLite's figures are One server's, of this run.",
        "",
        "| request | per | SQLite: server CPU s | Cassandra: server CPU s | Cassandra ÷ SQLite |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for label, sqlite_key, cassandra_key, counted in (*COSTS, STRONG):
        found = _pair(bench, sqlite_key, cassandra_key)
        if found is None:
            continue
        cells = [f"{per_10k(s):.2f}" if s.rps else "no requests answered" for s in found]
        ratio = ""
        if found[0].rps and found[1].rps:
            ratio = f"{per_10k(found[1]) / per_10k(found[0]):.1f}x"
        out.append(f"| {label} | {counted} | {cells[0]} | {cells[1]} | {ratio} |")
    return out


def _pair(bench: Harness, sqlite_key: str, cassandra_key: str) -> tuple[Scenario, Scenario] | None:
    sqlite, cassandra = bench.scenarios.get(sqlite_key), bench.scenarios.get(cassandra_key)
    if sqlite is None or cassandra is None or not sqlite.runs or not cassandra.runs:
        return None
    return sqlite, cassandra


def targets(bench: Harness) -> None:
    """Cassandra's CPU per message at most twice SQLite's, for POSTs and for reads."""
    for _label, sqlite_key, cassandra_key, counted in COSTS:
        found = _pair(bench, sqlite_key, cassandra_key)
        if found is None:
            bench.target(target_name(counted), f"<= {LIMIT:g}x", "", False, None,
                         why="not measured: no SQLite figure in this run",
                         measured=False)  # fmt: skip
            continue
        sqlite, cassandra = found
        if not (sqlite.rps and cassandra.rps):
            bench.target(target_name(counted), f"<= {LIMIT:g}x", "", False, None,
                         why="not measured: no request was answered during the runs of"
                         f" {cassandra.title if not cassandra.rps else sqlite.title}"
                         " (a node stalled or restarted by other work?)",
                         measured=False)  # fmt: skip
            continue
        mine, theirs = per_10k(cassandra), per_10k(sqlite)
        ratio = mine / theirs
        unit = "a POST" if cassandra.per_request == 1 else "a request of 10"
        each = f"{cassandra.cpu_per_request * 1e6:,.0f} vs {sqlite.cpu_per_request * 1e6:,.0f}"
        bench.target(
            target_name(counted), f"<= {LIMIT:g}x",
            f"{ratio:.1f}x ({mine:.2f} vs {theirs:.2f} CPU s; {each} µs {unit})",
            ratio <= LIMIT, cassandra, accounting=False,
            why="the web node's own CPU per request, in Queuey's process (the driver's work"
            " included, Cassandra's JVM not): see the profile for where it goes",
        )  # fmt: skip
