"""Running wrk with the Lua scripts in bench/lua/ and reading what they report.

Each script's ``done()`` prints one ``WRK-JSON {...}`` line (see
bench/lua/report.lua) with wrk's own counters and latency percentiles, so
nothing is parsed out of wrk's human-readable table.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.machine import CpuMeter, CpuShare

LUA = Path(__file__).resolve().parent / "lua"
ROOT = LUA.parent.parent


def ensure_wrk() -> None:
    """Install wrk from Debian's packages when it is missing."""
    if shutil.which("wrk"):
        return
    print("wrk is missing: installing it with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


@dataclass(frozen=True)
class Load:
    """One wrk command line, minus its duration."""

    script: str
    """A file name in bench/lua/."""
    url: str
    args: tuple[str, ...] = ()
    """key=value arguments of the script."""
    connections: int = 64
    cores: str | None = None
    """Where wrk runs (``taskset -c``), None for anywhere."""
    timeout: str = "10s"

    def command(self, seconds: float) -> list[str]:
        pin = ["taskset", "-c", self.cores] if self.cores else []
        return [
            *pin, "wrk", "-t1", f"-c{self.connections}", f"-d{seconds:g}s", "--latency",
            f"--timeout={self.timeout}", "-s", str(LUA / self.script), self.url,
            *(["--", *self.args] if self.args else []),
        ]  # fmt: skip

    def shell(self, seconds: float) -> str:
        """The command as one would type it in the repository's folder."""
        return shlex.join(
            str(Path(a).relative_to(ROOT)) if a.startswith(str(ROOT)) else a
            for a in self.command(seconds)
        )


@dataclass(frozen=True)
class Run:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu: CpuShare
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse(output: str, cpu: CpuShare) -> Run:
    """The ``WRK-JSON`` line of a run's output."""
    for line in output.splitlines():
        if line.startswith("WRK-JSON "):
            data = json.loads(line.removeprefix("WRK-JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no WRK-JSON line:\n{output}")
    errors = {
        "connect": data.pop("connect_errors"),
        "read": data.pop("read_errors"),
        "write": data.pop("write_errors"),
        "non-2xx": data.pop("status_errors"),
        "timeout": data.pop("timeouts"),
    }
    known = {"requests", "duration_us", "bytes", "mean_us", "max_us", "p50_us", "p90_us"}
    known |= {"p99_us", "p99.9_us"}
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors={k: v for k, v in errors.items() if v},
        cpu=cpu,
        extra={k: float(v) for k, v in data.items() if k not in known},
    )


def run(load: Load, seconds: float, server_pids: list[int]) -> Run:
    """One wrk run of ``seconds``, with the CPU each side used meanwhile."""
    meter = CpuMeter(server_pids)
    result = subprocess.run(
        load.command(seconds),
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    cpu = meter.stop()
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}{result.stdout}")
    return parse(result.stdout, cpu)
