"""``queuey serve --workers 2`` beside ``--workers 1`` on two cores: how writes and reads scale.

Two Queuey servers on SQLite, one with each number of workers, each on its
own file holding the single-server queues ``weak`` (for POSTs of one message)
and ``read`` (1,000 messages, for GET limit 10), are measured in the same
interleaved rounds. Nothing is pinned: on a machine of two cores a second
worker needs both, so wrk shares them with the server's processes. Requests/s
alone then understates what a second core gives, so every figure is also given
per second of the server's CPU: requests ÷ the CPU seconds (user + system) its
processes — the main process and its workers, read from /proc/PID/stat before
and after each run — used meanwhile; wrk's own CPU is shown beside it (its
user + system time, cutime + cstime of /proc/self/stat once it has exited).

Why they scale as they do is observed too, from /proc as well:

- how wrk's connections were spread over the workers, halfway through each
  run (the server's established sockets in /proc/net/tcp, matched to each
  worker's file descriptors): ``queuey serve`` shares one listening socket
  between its workers, and wrk opens all its connections when a run starts;
- each server's SQLite commits (``queuey_sqlite_commit_jobs`` and
  ``queuey_sqlite_commit_seconds`` of ``/__metrics__``, before and after the runs);
- what each worker's SQLite writer thread was doing under the POST load, its
  state sampled every 2 ms from /proc/PID/task/TID/stat and ``wchan`` (the
  thread found by name with ``py-spy dump``): asleep in SQLite's busy handler
  (``hrtimer_nanosleep``: the other worker held the file's write lock), on a
  core or waiting for one, waiting for the disk, or waiting on a futex (for
  posts, or for its process's GIL).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import fill, machine, profiling, wrk
from bench.harness import APP, KEY, SIZE, Harness, Scenario
from bench.servers import Fleet, Server

WORKERS = (1, 2)
TITLE = "Two workers on two cores (`--workers 2`)"
KINDS = (
    ("post", "writes", f"POST one {SIZE}-byte message, weak queue"),
    ("read", "reads", "GET a range, limit 10"),
)
WRITER_THREAD = "queuey-sqlite-write"
#: A writer thread's states, as sampled (see :func:`thread_state`), in the table's order.
STATES = (
    ("busy", "asleep in SQLite's busy handler (the other worker holds the write lock)"),
    ("cpu", "on a core or waiting for one"),
    ("disk", "waiting for the disk"),
    ("futex", "waiting for posts or for its process's GIL"),
    ("other", "other"),
)
SAMPLE_INTERVAL = 0.002
#: Spells of POSTs sampled, at most, for one in which two workers share the connections evenly.
ATTEMPTS = 3
CONNECTIONS_WHY = (
    "`queuey serve` shares one listening socket between its workers (no SO_REUSEPORT), and"
    " each worker accepts from it when it can, while wrk opens all its connections when a run"
    " starts: how they spread over the workers varies from run to run (`connections by"
    " worker`, counted halfway through each run), and a worker serves only the connections it"
    " holds, so a run whose connections went mostly to one worker is served mostly by one"
    " process."
)
WHY = {
    "post": (
        "Writes take turns on the file's one write lock: each worker has its own writer"
        " thread, and SQLite lets one transaction at a time write the file (`BEGIN"
        " IMMEDIATE`); a writer that finds the lock held sleeps in SQLite's busy handler, with"
        " growing delays (1, 2, 5, 10 ms and on), and its worker's posts wait meanwhile; and"
        " each worker commits a group of its own posts only (POSTs a commit, above)."
    ),
    "read": (
        "Reads take no lock that the other worker waits for: in WAL mode each read sees a"
        " snapshot of the file and neither blocks nor is blocked by the other process's"
        " readers or writer, so CPU and the spread of the connections alone bound them."
    ),
}
#: The less loaded worker's share of the connections: below it, a spread is lopsided.
LOPSIDED = 0.25
#: At or above it, about even.
EVEN = 0.35


def _held(spreads: list[tuple[int, ...]]) -> str:
    return ", ".join("+".join(str(n) for n in seen) for seen in spreads)


def _least_share(seen: tuple[int, ...]) -> float:
    """The share of the connections held by the worker holding fewest."""
    return min(seen) / sum(seen) if seen and sum(seen) else 0.0


def spread_sentence(spreads: list[tuple[int, ...]]) -> str:
    """What the connections' spread over two workers says, in a sentence ('' if unknown)."""
    seen: list[tuple[int, ...]] = [one for one in spreads if len(one) == 2 and sum(one) > 0]
    if not seen:
        return ""
    shares = [_least_share(one) for one in seen]
    if all(share < LOPSIDED for share in shares):
        return (
            f"wrk's connections went mostly to one worker in every run ({_held(seen)}), so one"
            " process served most requests and the other only what its few connections asked."
        )
    if all(share >= EVEN for share in shares):
        return f"wrk's connections were spread about evenly ({_held(seen)}), both workers serving."
    return f"wrk's connections were spread unevenly in some runs ({_held(seen)})."


@dataclass(frozen=True)
class Commits:
    """A server's SQLite commits, as ``/__metrics__`` counts them (all workers summed)."""

    commits: float = 0.0
    writes: float = 0.0
    """Jobs committed: one per POST of one message."""
    seconds: float = 0.0
    """Time spent in ``COMMIT``."""

    def __sub__(self, other: Commits) -> Commits:
        return Commits(
            self.commits - other.commits, self.writes - other.writes, self.seconds - other.seconds
        )


@dataclass
class Writers:
    """What the writer threads of one server did during a sampled spell of POSTs."""

    states: list[Counter[str]] = field(default_factory=list)
    """Samples of each writer thread (one a worker) by state, the least busy-waiting first."""
    connections: tuple[int, ...] = ()
    """wrk's connections by worker meanwhile, the most first."""
    cores: tuple[float, ...] = ()
    """Cores each of the server's processes used meanwhile, the busiest first."""

    def share(self, thread: int, state: str) -> float:
        counts = self.states[thread]
        return counts[state] / max(sum(counts.values()), 1)


def commits(url: str) -> Commits:
    """The commit counters of the server at ``url`` now (0 when its metrics cannot be read)."""
    try:
        text = httpx.get(f"{url}/__metrics__", timeout=10).text
    except httpx.HTTPError:
        return Commits()
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        if name.startswith("queuey_sqlite_commit_"):
            found[name] = found.get(name, 0.0) + float(value)
    return Commits(
        found.get("queuey_sqlite_commit_jobs_count", 0.0),
        found.get("queuey_sqlite_commit_jobs_sum", 0.0),
        found.get("queuey_sqlite_commit_seconds_sum", 0.0),
    )


def _sockets(port: int) -> set[str]:
    """Inodes of the established TCP sockets whose local port is ``port`` (the server's side)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(fields[9])
    return found


def connections(port: int, pids: list[int]) -> tuple[int, ...]:
    """How many of the established connections to ``port`` each of ``pids`` holds, most first."""
    wanted = {f"socket:[{inode}]" for inode in _sockets(port)}
    counts = []
    for pid in pids:
        held = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    held += os.readlink(f"/proc/{pid}/fd/{fd}") in wanted
        counts.append(held)
    return tuple(sorted(counts, reverse=True))


def spread(server: Server) -> tuple[int, ...]:
    """wrk's connections to ``server`` by worker (its main process holds none), most first."""
    return connections(server.port, [p for p in server.pids() if p != server.pid])


def writer_threads(server: Server) -> list[tuple[int, int]]:
    """(process, thread id) of each writer thread of ``server``, found with ``py-spy dump``."""
    spy = profiling.py_spy()
    if spy is None:
        return []
    dump = subprocess.run(
        [spy, "dump", "--pid", str(server.pid), "--subprocesses"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    found, process = [], 0
    for line in dump.stdout.splitlines():
        if match := re.match(r"Process (\d+):", line):
            process = int(match[1])
        elif match := re.match(rf'Thread (\d+) .*"{WRITER_THREAD}"', line):
            found.append((process, int(match[1])))
    return found


def thread_state(process: int, thread: int) -> str:
    """One of ``STATES``' keys: what the thread is doing now, from /proc."""
    try:
        task = f"/proc/{process}/task/{thread}"
        state = Path(f"{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
        channel = Path(f"{task}/wchan").read_text()
    except (OSError, IndexError):
        return "other"
    if state == "R":
        return "cpu"
    if state == "D":
        return "disk"
    if "nanosleep" in channel:
        return "busy"
    return "futex" if "futex" in channel else "other"


def sample_writers(server: Server, load: wrk.Load, seconds: float) -> Writers:
    """The writer threads' states every 2 ms for ``seconds`` while wrk drives ``load``."""
    threads = writer_threads(server)
    if not threads:
        return Writers()
    driver = threading.Thread(target=wrk.run, args=(load, seconds + 2, []), daemon=True)
    driver.start()
    time.sleep(1)  # connected and under way
    meter = machine.CpuMeter(server.pids())
    states = [Counter[str]() for _ in threads]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for counts, (process, thread) in zip(states, threads, strict=True):
            counts[thread_state(process, thread)] += 1
        time.sleep(SAMPLE_INTERVAL)
    found = spread(server)
    cores = meter.stop().processes
    driver.join()
    states.sort(key=lambda counts: counts["busy"] / max(sum(counts.values()), 1))
    return Writers(states, found, cores)


def measure(bench: Harness) -> list[Scenario]:
    """Both servers, both loads, interleaved; what the writers did; the section."""
    s = bench.settings
    scenarios: list[Scenario] = []
    with Fleet(s.work, None) as fleet:
        servers = {}
        for workers in WORKERS:
            name = f"queuey-workers-{workers}"
            server = fleet.queuey(
                name, f"sqlite:///{s.work / name}.db", APP, KEY, workers=workers, pinned=False
            )
            bench.report.server(f"Queuey, --workers {workers}, not pinned", server.shell)
            fill.create_queue(server.url, APP, KEY, "weak", "weak")
            fill.create_queue(server.url, APP, KEY, "read", "weak")
            fill.post_messages(server.url, APP, KEY, "read", 1000, SIZE)
            servers[workers] = server
        args: tuple[str, ...]
        for kind, _, title in KINDS:
            for workers, server in servers.items():
                path, args = f"/v1/{APP}/read?limit=10", ()
                if kind == "post":
                    path, args = f"/v1/{APP}/weak", (f"size={SIZE}", "method=POST")
                made = bench.scenario(
                    f"workers-{workers}-{kind}",
                    f"{title}, --workers {workers}, nothing pinned",
                    server,
                    bench.load(server, path, "static.lua", *args, pinned=False),
                    per_request=10 if kind == "read" else 1,
                )
                made.during = functools.partial(spread, server)
                scenarios.append(made)
        before = {workers: commits(server.url) for workers, server in servers.items()}
        bench.measure(scenarios)
        counted = {w: commits(server.url) - before[w] for w, server in servers.items()}
        writers: dict[int, Writers] = {}
        for workers in WORKERS:
            post = bench.scenarios[f"workers-{workers}-post"]
            for attempt in range(1, ATTEMPTS + 1):
                bench.log(f"sampling the writer threads ({attempt}): {post.title}")
                found = sample_writers(post.server, post.load, s.profile_seconds)
                best = writers.get(workers)
                if best is None or _least_share(found.connections) > _least_share(best.connections):
                    writers[workers] = found
                if workers == 1 or _least_share(found.connections) >= EVEN:
                    break
        for workers, server in servers.items():
            bench.report.memory(
                f"Queuey, --workers {workers} (not pinned)", server.rss_mb(), server.peak_rss_mb()
            )
    by_key = {one.key: one for one in scenarios}
    lines = section(by_key, s.connections, s.max_other, counted, writers, s.profile_seconds)
    bench.report.section(TITLE, lines)
    return scenarios


def section(
    scenarios: dict[str, Scenario],
    connections: int,
    max_other: float = 0.3,
    counted: dict[int, Commits] | None = None,
    writers: dict[int, Writers] | None = None,
    sampled_seconds: float = 0.0,
) -> list[str]:
    """The section's Markdown: how it was measured, the tables, how each load scaled and why."""
    counted, writers = counted or {}, writers or {}
    out = [
        f"Queuey with `--workers 1` and with `--workers 2`, each on its own SQLite file (queues"
        f" `weak` and `read` as in One server), wrk with {connections} connections, the four"
        " figures in the same interleaved rounds. **Nothing is pinned**: this machine has two"
        " cores, so wrk shares them with the server's processes and cannot be moved off them."
        " Hence the method: besides requests/s, each figure is divided by the server's own"
        " CPU time — requests per server-CPU-second = requests ÷ the CPU seconds (user +"
        " system) of the server's processes (the main process and its workers, from"
        " /proc/PID/stat before and after each run; `by process`: each one's share, the"
        " busiest first). wrk's CPU (its user + system time, cutime + cstime of"
        " /proc/self/stat once it has exited) is shown beside it and is not counted; `other`"
        " is the rest of the machine's busy time (/proc/stat).",
        "",
        "| request | workers | requests/s | server cores | by process | connections by worker,"
        " each run | wrk cores | other cores | requests per server-CPU-second | p50 ms | p99 ms"
        " | errors | runs (requests/s) |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, _, title in KINDS:
        for workers in WORKERS:
            one = scenarios[f"workers-{workers}-{kind}"]
            runs = ", ".join(f"{r.rps:,.0f}" for r in one.runs)
            each = " + ".join(f"{c:.2f}" for c in one.process_cores)
            held = ", ".join("+".join(str(n) for n in seen) for seen in one.observed)
            out.append(
                f"| {title} | {workers} | {one.rps:,.0f} | {one.server_cores:.2f} | {each}"
                f" | {held} | {one.loadgen_cores:.2f} | {one.other_cores:.2f}"
                f" | {one.per_cpu_second:,.0f} | {one.p50:.2f} | {one.p99:.2f} | {one.errors}"
                f" | {runs} |"
            )
    if counted:
        out += _writer_tables(counted, writers, sampled_seconds)
    out += ["", f"How connections reach the workers: {CONNECTIONS_WHY}", ""]
    for kind, label, _ in KINDS:
        one, two = scenarios[f"workers-1-{kind}"], scenarios[f"workers-2-{kind}"]
        text = explain(kind, label, one, two, max_other)
        if kind == "post":
            text += _measured_writes(writers)
        out.append(f"- {text}")
    return out


def _writer_tables(
    counted: dict[int, Commits], writers: dict[int, Writers], seconds: float
) -> list[str]:
    out = [
        "",
        "The SQLite writers over the POST load. Commits, from `/__metrics__` (all workers"
        " together) over the warm-up and runs of this section (reads commit nothing): "
        + "; ".join(
            f"{w} worker{'s' if w > 1 else ''}: {c.commits:,.0f} commits of"
            f" {c.writes / c.commits if c.commits else 0:.1f} POSTs each,"
            f" {c.seconds / c.commits * 1000 if c.commits else 0:.2f} ms in `COMMIT` each"
            for w, c in counted.items()
        )
        + ".",
    ]
    if not any(w.states for w in writers.values()):
        return out
    out += [
        "",
        f"What each writer thread (one a worker) was doing during {seconds:g} s more of the"
        " same POST load, its state sampled every 2 ms from /proc/PID/task/TID (`stat` and"
        " `wchan`), with wrk's connections by worker and the server's processes' cores"
        " meanwhile:",
        "",
        "| workers | writer | connections by worker | cores by process | "
        + " | ".join(label for _, label in STATES)
        + " |",
        "| ---: | --- | --- | --- |" + " ---: |" * len(STATES),
    ]
    for workers in WORKERS:
        found = writers.get(workers, Writers())
        held = "+".join(str(n) for n in found.connections)
        cores = " + ".join(f"{c:.2f}" for c in found.cores)
        for rank in range(len(found.states)):
            name = "the worker's" if workers == 1 else f"{rank + 1} of {workers}"
            shares = " | ".join(f"{found.share(rank, key):.0%}" for key, _ in STATES)
            out.append(f"| {workers} | {name} | {held} | {cores} | {shares} |")
    return out


def _measured_writes(writers: dict[int, Writers]) -> str:
    """What the sampled writer threads say of the two workers' writes (empty without them)."""
    one_worker, two_workers = writers.get(1, Writers()), writers.get(2, Writers())
    if len(one_worker.states) != 1 or len(two_workers.states) != 2:
        return ""
    asleep = " and ".join(f"{two_workers.share(i, 'busy'):.0%}" for i in range(2))
    alone = f"{one_worker.share(0, 'busy'):.0%}"
    held = "+".join(str(n) for n in two_workers.connections)
    if _least_share(two_workers.connections) < LOPSIDED:
        return (
            f" In the spell sampled (table above) the connections went {held}, so one writer"
            f" had nearly all the posts: its busy-handler sleeps ({asleep}; {alone} with one"
            " worker) say little of two busy writers."
        )
    return (
        f" Sampled (table above), with the connections spread {held}: the writer threads slept"
        f" in SQLite's busy handler {asleep} of the time, waiting for the other worker's"
        f" transactions, against {alone} with one worker."
    )


def explain(kind: str, label: str, one: Scenario, two: Scenario, max_other: float = 0.3) -> str:
    """How ``two`` (2 workers) compares with ``one`` (1 worker), and why, in a paragraph."""
    if not (one.rps and two.rps and one.per_cpu_second and one.server_cores):
        return f"**{label.capitalize()}**: not measured (no requests answered)."
    rate, cores = two.rps / one.rps, two.server_cores / one.server_cores
    cost = two.per_cpu_second / one.per_cpu_second
    busy = two.server_cores + two.loadgen_cores + two.other_cores
    text = (
        f"**{label.capitalize()}** scale {rate:.2f}x with two workers: {two.rps:,.0f} against"
        f" {one.rps:,.0f} requests/s. Requests/s = the CPU the server got × requests per"
        f" server-CPU-second: its processes used {two.server_cores:.2f} cores against"
        f" {one.server_cores:.2f} ({cores:.2f}x) while wrk took {two.loadgen_cores:.2f} and"
        f" {one.loadgen_cores:.2f}, and each server-CPU-second served {two.per_cpu_second:,.0f}"
        f" requests against {one.per_cpu_second:,.0f} ({cost:.2f}x)."
    )
    shares = (
        f"{busy:.2f} of 2: the server {two.server_cores:.2f}, wrk {two.loadgen_cores:.2f},"
        f" other processes {two.other_cores:.2f}"
    )
    if busy >= 1.8:
        text += (
            f" Both cores were busy ({shares}), so the second worker could only use what wrk"
            " and other processes left: this machine cannot show more."
        )
        if cost >= 0.9:
            text += (
                " A request costs the server about the same CPU with two workers, so this load"
                " grows with the cores the server gets: with wrk on other cores, two workers"
                f" would serve about 2 × {two.per_cpu_second:,.0f} ="
                f" {2 * two.per_cpu_second:,.0f} requests/s if CPU alone bounded them."
            )
    else:
        text += (
            f" The cores were not saturated ({shares}): CPU does not bound this load with two"
            " workers; the server waited rather than ran."
        )
    if cost < 0.9:
        text += f" A request costs the server {1 / cost:.2f}x the CPU with two workers."
    noise = max(one.other_cores, two.other_cores)
    if noise > max_other:
        text += f" Other processes took up to {noise:.2f} cores during these runs: noisy figures."
    why = spread_sentence(two.observed)
    return f"{text} Why: {why + ' ' if why else ''}{WHY[kind]}"
