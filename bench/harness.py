"""What every bench scenario shares: settings, scenarios, runs, targets, report rows.

A :class:`Scenario` is one wrk load on one server; :class:`Harness` measures
scenarios (warm-up, interleaved rounds, runs again when the machine was
noisy) and records targets with what bounds a missed one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import machine, profiling, report, wrk
from bench.servers import Server

ROOT = Path(__file__).resolve().parent.parent
APP = "bench"
KEY = "bench-key-0123456789abcdef"
SIZE = 140


def ratio(part: float, whole: float) -> float:
    """``part / whole``, 0 when nothing was measured (a stalled run answers no request)."""
    return part / whole if whole else 0.0


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass(frozen=True)
class Settings:
    """What to run, from the environment (the variables are listed in bench/run.py)."""

    quick: bool
    runs: int
    seconds: float
    warmup: float
    queues: tuple[int, ...]
    groups: int
    connections: int
    profile: bool
    profile_seconds: float
    wait: float
    max_other: float
    retries: int
    noise_budget: float
    cassandra: bool
    output: Path
    work: Path

    @classmethod
    def from_environment(cls) -> Settings:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        queues = os.environ.get("BENCH_QUEUES") or ("1000,10000" if quick else "1000,1000000")
        profile = os.environ.get("BENCH_PROFILE")
        return cls(
            quick=quick,
            runs=_env_int("BENCH_RUNS", 1 if quick else 3),
            seconds=_env_float("BENCH_SECONDS", 2 if quick else 8),
            warmup=_env_float("BENCH_WARMUP", 1 if quick else 2),
            queues=tuple(sorted(int(q) for q in queues.split(","))),
            groups=_env_int("BENCH_GROUPS", 1000 if quick else 10_000),
            connections=_env_int("BENCH_CONNECTIONS", 64),
            profile=(profiling.py_spy() is not None) if profile is None else profile == "1",
            profile_seconds=_env_float("BENCH_PROFILE_SECONDS", 2 if quick else 6),
            wait=_env_float("BENCH_WAIT", 0 if quick else 120),
            max_other=_env_float("BENCH_MAX_OTHER", 0.3),
            retries=_env_int("BENCH_RETRIES", 0 if quick else 2),
            noise_budget=_env_float("BENCH_NOISE_BUDGET", 240),
            cassandra=os.environ.get("BENCH_CASSANDRA", "1") == "1",
            output=ROOT / os.environ.get("BENCH_OUTPUT", "BENCHMARKS.md"),
            work=ROOT / "var" / "bench",
        )


@dataclass
class Scenario:
    """One load on one server, and the runs measured."""

    key: str
    title: str
    server: Server
    load: wrk.Load
    per_request: float = 1.0
    """Messages per request, for messages per second (a batch of 100: 100)."""
    counter: str | None = None
    """The script's counter of messages, when requests carry varying numbers of them
    (group.lua's ``acked``): messages per second come from it instead of ``per_request``."""
    latency: str | None = None
    """The script's own latency samples to report instead of wrk's, which time every
    request (group.lua's ``claim_ms``: claims, not their acknowledgements)."""
    prepare: Callable[[Scenario, float], None] | None = None
    """Called before each run (warm-up included) with its seconds, untimed: to put in
    place what the run will use up (messages for a group to claim)."""
    during: Callable[[], tuple[int, ...]] | None = None
    """Called halfway through each measured run: what to observe of the server under load
    (how wrk's connections are spread over its workers), kept in ``observed``."""
    runs: list[wrk.Run] = field(default_factory=list)
    observed: list[tuple[int, ...]] = field(default_factory=list)
    """What ``during`` saw in each run, in the order of ``runs``."""

    def _median(self, value: Callable[[wrk.Run], float]) -> float:
        return statistics.median(value(r) for r in self.runs) if self.runs else 0.0

    def run_messages(self, run: wrk.Run) -> float:
        """Messages per second in one run."""
        if self.counter is None:
            return run.rps * self.per_request
        return run.extra.get(self.counter, 0.0) / run.seconds if run.seconds else 0.0

    def total(self, counter: str) -> float:
        """A script counter summed over the runs."""
        return sum(r.extra.get(counter, 0.0) for r in self.runs)

    @property
    def rps(self) -> float:
        return self._median(lambda r: r.rps)

    @property
    def messages(self) -> float:
        return self._median(self.run_messages)

    def _percentile(self, run: wrk.Run, p: int) -> float:
        if self.latency is None:
            return run.p50_ms if p == 50 else run.p99_ms
        return run.extra.get(f"{self.latency}_p{p}_us", 0.0) / 1000

    @property
    def p50(self) -> float:
        return self._median(lambda r: self._percentile(r, 50))

    @property
    def p99(self) -> float:
        return self._median(lambda r: self._percentile(r, 99))

    @property
    def server_cores(self) -> float:
        return self._median(lambda r: r.cpu.server)

    @property
    def process_cores(self) -> tuple[float, ...]:
        """Cores of each of the server's processes, the busiest first (medians by rank)."""
        ranks = min((len(r.cpu.processes) for r in self.runs), default=0)
        return tuple(statistics.median(r.cpu.processes[i] for r in self.runs) for i in range(ranks))

    @property
    def loadgen_cores(self) -> float:
        return self._median(lambda r: r.cpu.loadgen)

    @property
    def cpu_per_request(self) -> float:
        """Server CPU seconds per request (its processes' user + system time ÷ requests)."""
        return self._median(lambda r: r.cpu.server / r.rps if r.rps else 0.0)

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of the server's CPU time (requests ÷ its CPU seconds)."""
        return self._median(lambda r: r.rps / r.cpu.server if r.cpu.server else 0.0)

    @property
    def other_cores(self) -> float:
        return max((r.cpu.other for r in self.runs), default=0.0)

    @property
    def errors(self) -> int:
        return sum(r.error_count for r in self.runs)


class Harness:
    """Runs scenarios and records their figures and targets in the report.

    :class:`bench.run.Bench` defines the SQLite scenarios on top of it and
    :func:`bench.on_cassandra.measure` the Cassandra ones.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.report = report.Report(settings.quick)
        cpus = sorted(os.sched_getaffinity(0))
        pin = shutil.which("taskset") is not None and len(cpus) >= 2
        self.server_cores = str(cpus[0]) if pin else None
        self.loadgen_cores = str(cpus[1]) if pin else None
        self.scenarios: dict[str, Scenario] = {}
        self.fsync_ms = 0.0
        self.rerun = 0
        self.noise_spent = 0.0

    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def load(
        self, server: Server, path: str, script: str, *args: str, pinned: bool = True
    ) -> wrk.Load:
        """wrk on ``server``: on the load generator's core, or anywhere when not ``pinned``."""
        return wrk.Load(
            script=script,
            url=f"{server.url}{path}",
            args=(f"key={KEY}", *args),
            connections=self.settings.connections,
            cores=self.loadgen_cores if pinned else None,
        )

    def scenario(
        self, key: str, title: str, server: Server, load: wrk.Load, per_request: float = 1.0
    ) -> Scenario:
        return self.add(Scenario(key, title, server, load, per_request))

    def add(self, made: Scenario) -> Scenario:
        """Record a scenario made elsewhere (its key, its command in the report)."""
        self.scenarios[made.key] = made
        self.report.command(made.title, made.load.shell(self.settings.seconds))
        return made

    def measure(self, scenarios: list[Scenario]) -> None:
        """A warm-up run of each, then ``runs`` rounds of all of them in turn."""
        s = self.settings
        if s.warmup > 0:
            for one in scenarios:
                if one.prepare is not None:
                    one.prepare(one, s.warmup)
                self.log(f"warm-up {s.warmup:g} s: {one.title}")
                wrk.run(one.load, s.warmup, [])
        for round_ in range(1, s.runs + 1):
            for one in scenarios:
                result = self.run_once(one)
                one.runs.append(result)
                errors = f", errors {result.errors}" if result.errors else ""
                self.log(
                    f"run {round_}/{s.runs} {one.title}: {result.rps:,.0f} req/s,"
                    f" p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms,"
                    f" server {result.cpu.server:.2f} cores, other {result.cpu.other:.2f}{errors}"
                )

    def run_once(self, scenario: Scenario) -> wrk.Run:
        """One run; again after a quiet spell when other processes took too much CPU."""
        s = self.settings
        for attempt in range(s.retries + 1):
            if scenario.prepare is not None:
                scenario.prepare(scenario, s.seconds)
            began = time.monotonic()
            seen: list[tuple[int, ...]] = []
            probe = None
            if scenario.during is not None:
                probe = threading.Timer(s.seconds / 2, _observe, (scenario.during, seen))
                probe.start()
            result = wrk.run(scenario.load, s.seconds, scenario.server.pids())
            if probe is not None:
                probe.cancel()
                probe.join()
            noisy = result.cpu.other > s.max_other
            if not noisy or attempt == s.retries or self.noise_spent >= s.noise_budget:
                if scenario.during is not None:
                    scenario.observed.append(seen[0] if seen else ())
                return result
            self.log(
                f"other processes took {result.cpu.other:.2f} cores during {scenario.title}:"
                " waiting for quiet, then running it again"
            )
            self.rerun += 1
            machine.wait_for_quiet(min(60.0, s.noise_budget - self.noise_spent), s.max_other)
            self.noise_spent += time.monotonic() - began
        return result

    def target(
        self,
        name: str,
        goal: str,
        figure: str,
        met: bool,
        scenario: Scenario | None,
        latency: bool = False,
        why: str = "",
        accounting: bool = True,
        measured: bool = True,
    ) -> None:
        """Record a target; a missed one says what bounds it (CPU accounting, then ``why``).

        ``accounting``: start the explanation with what CPU accounting says of the
        scenario's throughput or latency (off for a target on CPU per request).
        ``measured``: False when the target could not be measured (``why`` says why).
        """
        bound = ""
        if not met and measured and scenario is not None and accounting:
            bound = self.bound(scenario, latency)
        if why and not met:
            bound = f"{bound}; {why}" if bound else why
        if bound and scenario is not None and scenario.other_cores > self.settings.max_other:
            bound += (
                f"; noisy: other processes took up to {scenario.other_cores:.2f} cores"
                " during its runs"
            )
        key = scenario.key if scenario else None
        self.report.target(name, goal, figure, met, key, bound, measured=measured)

    def bound(self, scenario: Scenario, latency: bool) -> str:
        """What limits a scenario, as far as CPU accounting tells; the profiles tell more."""
        server, loadgen = scenario.server_cores, scenario.loadgen_cores
        if latency:
            return (
                f"the server's core was {server:.0%} busy at this rate: requests queue behind"
                " one another's work (see the profile)"
            )
        if server >= 0.85:
            return f"server CPU: its one core was {server:.0%} busy (see the profile)"
        if loadgen >= 0.85:
            return f"the load generator: wrk's core was {loadgen:.0%} busy"
        return (
            f"waiting, not CPU: the server's core was only {server:.0%} busy"
            f" (fsync of 4 KiB takes {self.fsync_ms:.2f} ms on this disk)"
        )

    def profiles(self) -> None:
        """Profile each scenario behind a missed target, while its server still runs.

        Called after each group of servers is measured, before they stop: scenarios
        whose server has stopped, or that were profiled already, are left out.
        """
        s = self.settings
        if not s.profile:
            return
        for key in self.report.missed_scenarios():
            scenario = self.scenarios[key]
            if key in self.report.profiles or scenario.server.process is None:
                continue
            self.log(f"profiling {scenario.title}")
            if scenario.prepare is not None:
                scenario.prepare(scenario, s.profile_seconds)
            output = s.work / f"profile-{key}.txt"
            try:
                found = profiling.record(scenario.server, scenario.load, s.profile_seconds, output)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                self.report.note(f"Profiling {scenario.title} failed: {exc}")
                continue
            self.report.profile(key, scenario.title, found)


def _observe(during: Callable[[], tuple[int, ...]], into: list[tuple[int, ...]]) -> None:
    into.append(during())


def rows(scenarios: list[Scenario], by_messages: bool = False) -> list[report.Row]:
    """The report's rows: each scenario's medians; ``by_messages``: runs in messages/s."""
    return [
        report.Row(
            title=s.title,
            rps=s.rps,
            messages=s.messages if by_messages or s.per_request != 1 or s.counter else None,
            p50=s.p50,
            p99=s.p99,
            server_cores=s.server_cores,
            other_cores=s.other_cores,
            errors=s.errors,
            runs=tuple(s.run_messages(r) if by_messages else r.rps for r in s.runs),
        )
        for s in scenarios
    ]
