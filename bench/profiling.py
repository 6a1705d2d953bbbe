"""A quick profile of a server under load: py-spy samples while wrk drives it.

py-spy (pinned in pyproject.toml's ``bench`` extra, so ``make install`` puts it
in .venv; Queuey itself does not need it) records the server's Python stacks;
only samples of threads that were running count (py-spy leaves out idle ones:
waiting on a socket, a lock or the disk). The result: how busy each thread
was, and the functions that took the time, by self time (the function itself)
and total time (with what it called).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import wrk
from bench.servers import ROOT, Server

RATE = 100
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]+?)(?::\d+)?\)$")
_SITE = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")
#: Queuey's own code, where the total-time ranking looks (start-up in cli.py left out).
_QUEUEY = str(ROOT / "queuey") + "/"
_STARTUP = str(ROOT / "queuey" / "cli.py")


def py_spy() -> str | None:
    """The py-spy command, beside this Python or on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame(text: str) -> tuple[str, bool]:
    """``name (/full/file.py:line)`` -> (``name (short/file.py)``, whether it is Queuey's code)."""
    match = _FRAME.match(text)
    if match is None:
        return text, False
    path = match["file"]
    ours = path.startswith(_QUEUEY) and path != _STARTUP
    short = path.removeprefix(str(ROOT) + "/") if ours else _SITE.sub("", path)
    return f"{match['name']} ({short})", ours


@dataclass
class Profile:
    """Samples of one server under one load."""

    samples: int
    in_app: int
    seconds: float
    threads: Counter[str]
    own: Counter[str]
    total: Counter[str]
    command: str

    @property
    def inside_queuey(self) -> float:
        """Share of running samples with Queuey's code on the stack."""
        return self.in_app / max(self.samples, 1)

    def thread_busy(self) -> list[tuple[str, float]]:
        """(thread, share of the time it was running), busiest first."""
        slots = max(self.seconds * RATE, 1.0)
        return [(name, count / slots) for name, count in self.threads.most_common()]

    def top(self, counter: Counter[str], count: int) -> list[tuple[str, float]]:
        """(function, share of all running samples)."""
        return [(name, n / max(self.samples, 1)) for name, n in counter.most_common(count)]


def parse(text: str, seconds: float, command: str) -> Profile:
    """py-spy's raw (collapsed) output: ``process;...;thread (tid);frame;...;frame COUNT``."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    roots: dict[str, Counter[str]] = {}
    samples = in_app = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        at = next((i for i, p in enumerate(parts) if p.startswith("thread (")), -1)
        parsed = [_frame(p) for p in parts[at + 1 :]]
        frames = [name for name, _ in parsed]
        if not frames:
            continue
        samples += count
        ours = {name for name, mine in parsed if mine}
        in_app += count if ours else 0
        thread = parts[at] if at >= 0 else "thread"
        threads[thread] += count
        # Threads without a name are known by their most common outermost frame of note.
        roots.setdefault(thread, Counter())[frames[0]] += count
        own[frames[-1]] += count
        for name in ours:
            total[name] += count
    named: Counter[str] = Counter()
    for thread, count in threads.items():
        label = thread if ":" in thread else f"{thread} {roots[thread].most_common(1)[0][0]}"
        named[label] = count
    return Profile(samples, in_app, seconds, named, own, total, command)


def record(server: Server, load: wrk.Load, seconds: float, output: Path) -> Profile:
    """Profile ``server`` for ``seconds`` while wrk drives ``load``; raw stacks go to ``output``."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed")
    command = [
        spy, "record", "--pid", str(server.pid), "--subprocesses", "--threads", "--nonblocking",
        "--rate", str(RATE), "--duration", f"{seconds:g}", "--format", "raw", "--full-filenames",
        "-o", str(output),
    ]  # fmt: skip
    if load.cores:
        command = ["taskset", "-c", load.cores, *command]
    # wrk starts first and runs longer, so py-spy only sees the server under load.
    driver = threading.Thread(target=wrk.run, args=(load, seconds + 2, []), daemon=True)
    driver.start()
    time.sleep(0.5)
    try:
        subprocess.run(command, capture_output=True, check=True, timeout=seconds + 60)
    finally:
        driver.join()
    shown = " ".join(
        Path(c).name if c == spy else str(Path(c).relative_to(ROOT)) if c == str(output) else c
        for c in command
    )
    return parse(output.read_text(), seconds, shown)
