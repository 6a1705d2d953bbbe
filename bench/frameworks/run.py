"""``python -m bench.frameworks``: Queuey's hot paths on each framework, one core, one run.

Each app of ``apps.LABELS`` is served by granian (ASGI, one worker) pinned to
core 0 with ``taskset``, on its own fresh SQLite file holding three queues:
``weak`` and ``strong`` (one partition each, of those consistencies) for
POSTs of 140 bytes of text/plain, and ``read`` (100 messages) for GET
``?limit=10``. wrk drives them from core 1 with 64 connections. The apps are
interleaved in rounds (every endpoint on every app, in a rotated order, then
the next round) so that a slow spell of the machine hits them all alike; each
figure is the median over the rounds, shown with its share of the bare
handler's figure in the same run. A run during which other processes used more
than ``--max-other`` cores is run again, within ``--noise-budget`` seconds in all.

The table goes to stdout and into docs/architecture.md between the
``frameworks`` markers. Every server is stopped at the end, also on errors,
Ctrl-C and SIGTERM; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import httpx

from bench import wrk
from bench.frameworks.adapt import APP, KEY_VARIABLE, STORAGE_URL_VARIABLE
from bench.frameworks.apps import LABELS
from bench.machine import cpu_model, versions, wait_for_quiet
from bench.servers import Server, free_port
from queuey.api.metrics import MULTIPROC_ENV
from queuey.core.service import QueueService
from queuey.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent.parent
SIZE = 140
READ_MESSAGES = 100
SERVER_CORE, WRK_CORE = "0", "1"
START, END = "<!-- frameworks:start -->", "<!-- frameworks:end -->"


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    post: bool


ENDPOINTS = (
    Endpoint("POST weak", f"/v1/{APP}/weak", post=True),
    Endpoint("POST strong", f"/v1/{APP}/strong", post=True),
    Endpoint("GET ?limit=10", f"/v1/{APP}/read?limit=10", post=False),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.frameworks", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=7, help="of each measured run")
    parser.add_argument("--warmup", type=int, default=1, help="of the run before each")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--max-other", type=float, default=0.3, help="cores; more: run again")
    parser.add_argument(
        "--noise-budget", type=float, default=60, help="seconds of waiting and reruns, in all"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "architecture.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--write-noisy", action="store_true", help="write even if a kept run was noisy"
    )
    return parser.parse_args(argv)


# -- the servers -------------------------------------------------------------------


async def prepare(url: str) -> None:
    """The queues of the bench on a fresh store: ``weak``, ``strong``, and ``read`` filled."""
    store = open_storage(url)
    await store.start()
    try:
        service = QueueService(store)
        for name in ("weak", "strong", "read"):
            consistency = "strong" if name == "strong" else "weak"
            await service.queues.create(APP, {"queue_name": name, "consistency": consistency})
        read = await service.queues.find(APP, "read")
        for _ in range(READ_MESSAGES):
            await service.messages.post_one(read, b"x" * SIZE, "text/plain", None, None)
    finally:
        await store.close()


def server(name: str, work: Path, key: str) -> Server:
    """``granian`` serving app ``name`` on a free port of 127.0.0.1, pinned to the server core."""
    port = free_port()
    url = f"sqlite:///{work / name}.db"
    if name != "bare":
        asyncio.run(prepare(url))
    # As `queuey serve`: the access log on stderr, metrics in files of a fresh directory.
    metrics = work / f"{name}-metrics"
    metrics.mkdir()
    command = [
        "env", f"{STORAGE_URL_VARIABLE}={url}", f"{KEY_VARIABLE}={key}",
        f"{MULTIPROC_ENV}={metrics}",
        str(Path(sys.executable).parent / "granian"), "--interface", "asgi", "--workers", "1",
        "--host", "127.0.0.1", "--port", str(port), "--factory", f"bench.frameworks.apps:{name}",
    ]  # fmt: skip
    return Server(name, command, port, work / f"{name}.log", SERVER_CORE)


def check(server: Server, key: str) -> None:
    """One request per endpoint, answered as it should be, before anything is measured."""
    headers = {"Authorization": f"Application {key}", "Content-Type": "text/plain"}
    for endpoint in ENDPOINTS:
        url = server.url + endpoint.path
        if endpoint.post:
            response = httpx.post(url, headers=headers, content=b"x" * SIZE)
        else:
            response = httpx.get(url, headers=headers)
        expected = 200 if server.name == "bare" or not endpoint.post else 201
        if response.status_code != expected:
            raise RuntimeError(
                f"{server.name} {endpoint.label}: {response.status_code} {response.text}"
            )
        if server.name != "bare" and not endpoint.post and len(response.json()["messages"]) != 10:
            raise RuntimeError(f"{server.name} {endpoint.label}: not 10 messages")


# -- measuring ---------------------------------------------------------------------


class Measurements:
    """The runs of every (app, endpoint), taken in interleaved rounds."""

    def __init__(self, args: argparse.Namespace, servers: dict[str, Server], key: str) -> None:
        self.args = args
        self.servers = servers
        self.key = key
        self.runs: dict[tuple[str, str], list[wrk.Run]] = {}
        self.retries = 0
        self.noise_left = args.noise_budget

    def quiet(self) -> None:
        """Wait, within the noise budget, until other processes use under ``--max-other`` cores."""
        if self.noise_left > 0:
            waited, _ = wait_for_quiet(self.noise_left, self.args.max_other)
            self.noise_left -= waited

    def load(self, server: Server, endpoint: Endpoint) -> wrk.Load:
        post = ("method=POST", f"size={SIZE}") if endpoint.post else ()
        return wrk.Load(
            "static.lua",
            server.url + endpoint.path,
            (f"key={self.key}", *post),
            connections=self.args.connections,
            cores=WRK_CORE,
        )

    def once(self, server: Server, endpoint: Endpoint) -> wrk.Run:
        load = self.load(server, endpoint)
        pids = server.pids()
        wrk.run(load, self.args.warmup, pids)
        run = wrk.run(load, self.args.seconds, pids)
        while run.cpu.other > self.args.max_other and self.noise_left > 0:
            print(f"    other processes took {run.cpu.other:.2f} cores: again", flush=True)
            self.retries += 1
            self.noise_left -= self.args.seconds
            self.quiet()
            run = wrk.run(load, self.args.seconds, pids)
        if run.error_count:
            raise RuntimeError(f"{server.name} {endpoint.label}: wrk saw errors {run.errors}")
        return run

    def all_rounds(self) -> None:
        names = list(self.servers)
        for round_ in range(self.args.rounds):
            shift = round_ % len(names)
            order = names[shift:] + names[:shift]
            for endpoint in ENDPOINTS:
                for name in order:
                    run = self.once(self.servers[name], endpoint)
                    self.runs.setdefault((name, endpoint.label), []).append(run)
                    print(
                        f"round {round_ + 1}/{self.args.rounds}  {endpoint.label:<14} {name:<10}"
                        f" {run.rps:>9,.0f} req/s  server {run.cpu.server:.2f} cores,"
                        f" other {run.cpu.other:.2f}",
                        flush=True,
                    )

    def median(self, name: str, endpoint: Endpoint) -> float:
        return statistics.median(r.rps for r in self.runs[(name, endpoint.label)])

    def spread(self) -> float:
        """The largest (max - min) / median of any cell."""
        return max(
            (max(r.rps for r in runs) - min(r.rps for r in runs))
            / statistics.median(r.rps for r in runs)
            for runs in self.runs.values()
        )

    def other(self) -> float:
        """The most cores other processes took during a kept run."""
        return max(r.cpu.other for runs in self.runs.values() for r in runs)

    def server_cores(self) -> tuple[float, float]:
        """The least and the most cores a server used during a kept run."""
        used = [r.cpu.server for runs in self.runs.values() for r in runs]
        return min(used), max(used)


# -- the report ----------------------------------------------------------------------


def machine() -> str:
    """Cores, CPU, OS, and the version of everything on the measured path (Falcon included)."""
    found = versions()
    found.insert(3, ("Falcon", version("falcon")))
    return (
        f"{os.cpu_count()} cores (`nproc`), {cpu_model()}, {platform.system()}"
        f" {platform.release()}; " + ", ".join(f"{name} {v}" for name, v in found)
    )


def _markdown(first: str, names: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    lines = [
        f"| {first} | " + " | ".join(LABELS[n] for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return lines


def _rate(name: str, rps: dict[str, float]) -> str:
    """Requests per second, and their share of the bare handler's."""
    share = "" if name == "bare" else f" ({rps[name] / rps['bare']:.0%})"
    return f"{rps[name]:,.0f}{share}"


def _cost(name: str, us: dict[str, float]) -> str:
    """Microseconds per request, and the difference from Queuey's."""
    more = "" if name in ("bare", "queuey") else f" ({us[name] - us['queuey']:+.0f})"
    return f"{us[name]:.0f}{more}"


def table(measured: Measurements) -> str:
    """The figures (req/s, then one core's time per request) and how they were taken."""
    names = list(measured.servers)
    rates, costs = [], []
    for endpoint in ENDPOINTS:
        rps = {n: measured.median(n, endpoint) for n in names}
        us = {n: 1e6 / rps[n] for n in names}
        rates.append((endpoint.label, [_rate(n, rps) for n in names]))
        costs.append((endpoint.label, [_cost(n, us) for n in names]))
    lines = _markdown("req/s", names, rates)
    lines += ["", *_markdown("µs per request", names, costs)]
    args = measured.args
    low, high = measured.server_cores()
    today = datetime.date.today().isoformat()
    notes = [
        f"Requests per second, median of {args.rounds} interleaved runs of {args.seconds:g} s"
        f" (after {args.warmup:g} s of warm-up each); in parentheses, the share of the bare"
        " handler's figure. µs per request: 10⁶ / (req/s), one core's time per request while"
        f" the server keeps its core busy (it used {low:.2f}–{high:.2f} cores); in"
        " parentheses, the difference from Queuey's."
        " Largest spread of a cell over its runs (max − min, of the median):"
        f" {measured.spread():.0%}; other processes took at most {measured.other():.2f} cores"
        f" during a kept run ({measured.retries} runs repeated for noise). Measured {today}"
        f" by `python -m bench.frameworks`.",
        f"Machine: {machine()}.",
        "Server: `taskset -c 0 granian --interface asgi --workers 1 --host 127.0.0.1"
        " --port PORT --factory bench.frameworks.apps:NAME`, each on its own SQLite file;"
        f" load: `taskset -c 1 wrk -t1 -c{args.connections} -d{args.seconds:g}s"
        " -s bench/lua/static.lua URL -- key=KEY method=POST size=140` (GET: no method"
        " and size), POSTs of 140 bytes of text/plain to one-partition queues of each"
        f" consistency, GETs of 10 of {READ_MESSAGES} messages.",
    ]
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def write(path: Path, block: str) -> None:
    """Replace what lies between the markers in ``path`` with ``block``."""
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{path}: no {START} ... {END} markers to write between")
    path.write_text(f"{head}{START}\n{block}{END}{tail}", encoding="utf-8")


# -- main ----------------------------------------------------------------------------


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("needs wrk and taskset (apt-get install wrk util-linux)")
    if not {0, 1} <= os.sched_getaffinity(0):
        raise SystemExit("needs cores 0 and 1: the servers run on one, wrk on the other")
    signal.signal(signal.SIGTERM, _terminate)
    work = ROOT / "var" / "bench-frameworks"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    key = secrets.token_hex(16)
    per_run = args.warmup + args.seconds
    total = per_run * args.rounds * len(ENDPOINTS) * len(LABELS)
    rounds = f"{len(LABELS)} apps x {len(ENDPOINTS)} endpoints x {args.rounds} rounds"
    print(f"{rounds}: about {total / 60:.1f} minutes on a quiet machine", flush=True)
    servers: dict[str, Server] = {}
    try:
        for name in LABELS:
            servers[name] = server(name, work, key)
            servers[name].start()
            check(servers[name], key)
        measured = Measurements(args, servers, key)
        measured.quiet()
        measured.all_rounds()
    finally:
        for running in servers.values():
            running.stop()
    # Measured: the files (hundreds of MB of rows and access-log lines) are not needed
    # any more. A run that failed keeps them, for its servers' logs.
    shutil.rmtree(work, ignore_errors=True)
    block = table(measured)
    print("\n" + block)
    if args.no_write:
        return 0
    if measured.other() > args.max_other and not args.write_noisy:
        print(
            f"not written: other processes took up to {measured.other():.2f} cores during"
            " kept runs (the noise budget ran out); run again on a quiet machine",
            file=sys.stderr,
        )
        return 1
    write(args.output, block)
    print(f"written to {args.output}")
    return 0
