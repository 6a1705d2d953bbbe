"""Real ``queuey serve`` processes for the fault tests, and raw sockets to talk to them.

:class:`Queuey` starts a server in its own process group, and kills the
group: the workers die with the main process anyway (queuey/worker.py), but
the group also catches a worker of a server that failed half-way. :func:`exchange` sends raw bytes
and reads until the server closes the connection or goes quiet.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import KEYS, RESERVE, ROOT, free_port

KEY = KEYS["app1"][0]
AUTH = {"Authorization": f"Application {KEY}"}


def write_config(
    path: Path,
    db: Path,
    port: int,
    server: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
) -> Path:
    """A configuration file: SQLite at ``db``, the test keys, and extra settings per section.

    The disk-full reserve is the tests' small one unless ``storage`` says otherwise.
    """
    storage = {"reserve_bytes": RESERVE, **(storage or {})}

    def table(values: dict[str, Any]) -> str:
        return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())

    keys = "".join(f'{app} = ["{k[0]}"]\n' for app, k in KEYS.items())
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n{table(server or {})}\n'
        f'[storage]\nurl = "sqlite:///{db}"\n{table(storage)}\n'
        f"[application_keys]\n{keys}",
        encoding="utf-8",
    )
    return path


class Queuey:
    """One ``queuey serve`` on a free port, its output in a log file, in its own process group."""

    def __init__(
        self,
        directory: Path,
        db: Path | None = None,
        *,
        server: dict[str, Any] | None = None,
        storage: dict[str, Any] | None = None,
        workers: int = 1,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db or directory / "queuey.db"
        self.config = write_config(
            directory / f"queuey-{self.port}.toml", self.db, self.port, server, storage
        )
        self.log = directory / f"queuey-{self.port}.log"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0  # where this run's output starts in the log

    def start(self, timeout: float = 30.0) -> Queuey:
        command = [sys.executable, "-m", "queuey.cli", "serve", "--config", str(self.config)]
        command += ["--workers", str(self.workers)]
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        # Every worker, not only the first to answer: a worker still starting misses a
        # SIGTERM (granian 2.8.9), and is killed only after shutdown_seconds.
        started = [f"Started worker-{n}" for n in range(1, self.workers + 1)]
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"queuey serve exited: {self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/__lbheartbeat__", timeout=1).status_code == 200:
                    run = self.log.read_bytes()[self._offset :].decode(errors="replace")
                    if all(line in run for line in started):
                        return self
            time.sleep(0.05)
        raise RuntimeError(f"queuey serve did not answer in {timeout}s: {self.output()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        """SIGTERM to the main process, as a service manager sends it."""
        os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL to the whole process group: the main process and its workers."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        """Whatever state it is in: SIGTERM, then SIGKILL for the group after 15 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # workers left behind, if any
        if self.process.poll() is None:
            self.process.wait(10)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH, timeout=timeout)

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)


def troubles(log: str) -> list[str]:
    """Lines of a server log that a healthy server never writes."""
    words = ("Traceback", "WARNING", "ERROR", "Error", "Exception", "[WARN")
    return [line for line in log.splitlines() if any(w in line for w in words)]


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server sends until it closes: (bytes, "closed" | "reset" | "timeout")."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received, "timeout"
    except ConnectionResetError:
        return received, "reset"
    return received, "closed"


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, str]:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    with connect(port, timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lowercase names) and body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body
