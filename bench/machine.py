"""The machine the bench runs on: hardware, versions, CPU accounting, disk sync latency."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def describe() -> list[str]:
    """One line each: CPU, memory, OS."""
    return [
        f"CPU: {cpu_model()}, {os.cpu_count()} cores"
        f" ({len(os.sched_getaffinity(0))} usable by this process)",
        f"Memory: {memory_gib():.1f} GiB",
        f"OS: {platform.system()} {platform.release()} ({platform.machine()})",
    ]


def _command_output(*command: str) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip()


def versions() -> list[tuple[str, str]]:
    """(name, version) of everything on the measured path."""
    wrk = _command_output("wrk", "-v").splitlines()
    commit = _command_output("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = _command_output("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")
    return [
        ("Python", platform.python_version()),
        ("granian", version("granian")),
        ("Starlette", version("starlette")),
        ("msgspec", version("msgspec")),
        ("SQLite", sqlite3.sqlite_version),
        ("wrk", wrk[0].split(" [")[0].removeprefix("wrk ") if wrk else "unknown"),
        ("Queuey", f"{version('queuey')} (git {commit}{' with local changes' if dirty else ''})"),
    ]


# -- CPU accounting ----------------------------------------------------------------


def busy_seconds() -> float:
    """CPU time spent busy on all cores since boot (everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def process_seconds(pid: int) -> float:
    """CPU time (user + system) of one live process, 0.0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_seconds() -> float:
    """CPU time of this process's waited-for children (wrk runs, py-spy).

    ``cutime`` + ``cstime`` of /proc/self/stat: a child's user and system time,
    added when it has exited and been waited for (what ``os.times()`` reports too).
    """
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


@dataclass(frozen=True)
class CpuShare:
    """Cores used over an interval: by the servers measured, the load generator, the rest."""

    server: float
    loadgen: float
    other: float
    processes: tuple[float, ...] = ()
    """Cores of each of the server's processes, the busiest first."""


class CpuMeter:
    """Splits the machine's busy time over an interval between server, wrk and the rest."""

    def __init__(self, server_pids: list[int]) -> None:
        self.server_pids = server_pids
        self.began = time.monotonic()
        self.busy = busy_seconds()
        self.server = {p: process_seconds(p) for p in server_pids}
        self.children = children_seconds()

    def stop(self) -> CpuShare:
        elapsed = max(time.monotonic() - self.began, 1e-9)
        busy = busy_seconds() - self.busy
        each = sorted((process_seconds(p) - self.server[p] for p in self.server_pids), reverse=True)
        server = sum(each)
        loadgen = children_seconds() - self.children
        other = max(0.0, busy - server - loadgen)
        processes = tuple(max(0.0, s) / elapsed for s in each)
        return CpuShare(server / elapsed, loadgen / elapsed, other / elapsed, processes)


def background_cores(seconds: float = 2.0) -> float:
    """Cores busy over ``seconds`` while this process only sleeps."""
    meter = CpuMeter([])
    time.sleep(seconds)
    return meter.stop().other


def wait_for_quiet(limit: float, threshold: float = 0.25) -> tuple[float, float]:
    """Wait up to ``limit`` seconds for other processes to use under ``threshold`` cores.

    Returns (seconds waited, the last background load seen, in cores).
    """
    began = time.monotonic()
    load = background_cores(1.0)
    while load >= threshold and time.monotonic() - began < limit:
        load = background_cores(2.0)
    return time.monotonic() - began, load


def fsync_ms(folder: Path, count: int = 100) -> float:
    """Median time to write 4 KiB and fdatasync it in ``folder``: what a durable commit waits."""
    path = folder / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = os.urandom(4096)
        for i in range(count):
            began = time.perf_counter()
            os.pwrite(fd, block, (i % 16) * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1000
