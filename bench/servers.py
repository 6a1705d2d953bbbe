"""Servers for the benchmark, started pinned to core 0 and always stopped."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx

from queuey.storage.sqlite_schema import migrate

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Running:
    """A server process (group) on a port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, key: str) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.key = key

    def create(self, name: str, consistency: str) -> None:
        response = httpx.post(
            f"{self.url}/v1/app",
            json={"queue_name": name, "consistency": consistency},
            headers={"Authorization": f"Application {self.key}"},
            timeout=60,
        )
        response.raise_for_status()

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker processes, in MB."""
        pids = [self.process.pid]
        with contextlib.suppress(FileNotFoundError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024


@contextlib.contextmanager
def _process(command: list[str], port: int, key: str, log: Path) -> Iterator[Running]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", "0", *command], stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT, start_new_session=True,
        )  # fmt: skip
    running = Running(process, port, key)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{running.url}/__lbheartbeat__", timeout=1).status_code in (200, 404):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer: {log.read_text()}")
            time.sleep(0.2)
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def baseline(work: Path) -> Iterator[Running]:
    port = free_port()
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
        "--port", str(port), "--no-ws", "bench.baseline_app:app",
    ]  # fmt: skip
    with _process(command, port, "", work / "baseline.log") as running:
        yield running


@contextlib.contextmanager
def queuey(work: Path, storage_url: str, key: str) -> Iterator[Running]:
    port = free_port()
    config = work / f"queuey-{port}.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n[storage]\nurl = "{storage_url}"\n\n'
        f'[application_keys]\napp = ["{key}"]\n'
    )
    command = [sys.executable, "-m", "queuey.cli", "serve", "--config", str(config)]
    with _process(command, port, key, work / f"queuey-{port}.log") as running:
        yield running


def prefill_sqlite(path: Path, app: str, count: int) -> None:
    """Create ``count`` weak queues ``q1``..``q<count>`` directly in a SQLite file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn)
    conn.execute("BEGIN")
    now = time.time()
    conn.executemany(
        "INSERT INTO queues (app, name, partitions, type, consistency, principles, created)"
        " VALUES (?, ?, 1, 'user', 'weak', '', ?)",
        ((app, f"q{i}", now) for i in range(1, count + 1)),
    )
    conn.execute("COMMIT")
    conn.close()


def cassandra_runner() -> ModuleType:
    """scripts/cassandra.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "cassandra_runner", ROOT / "scripts" / "cassandra.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
