"""The servers the bench measures: started pinned to a core, always stopped.

Each server runs in its own session (process group), so stopping it stops
granian's workers too, and nothing else. :class:`Fleet` stops every server
it started when its ``with`` block ends, also on errors and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


class Server:
    """One server command, pinned with ``taskset`` when ``cores`` is given."""

    def __init__(
        self, name: str, command: list[str], port: int, log: Path, cores: str | None
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.command = (["taskset", "-c", cores] if cores else []) + command
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def shell(self) -> str:
        """The command as one would type it in the repository's folder."""
        return shlex.join(
            os.path.relpath(a, ROOT) if a.startswith(str(ROOT)) else a for a in self.command
        )

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/__lbheartbeat__", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer in {timeout}s: {self.log.read_text()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 20 s."""
        process = self.process
        if process is None:
            return
        self.process = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Workers that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def pids(self) -> list[int]:
        """The server's process and its workers."""
        return descendants(self.pid)

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), all the server's processes summed, in MB (10^6 bytes)."""
        return sum(_status_kib(p, "VmRSS") for p in self.pids()) * 1024 / 1e6

    def rss_by_process(self) -> list[tuple[int, float]]:
        """(pid, VmRSS in MB) of each of the server's processes."""
        return [(p, _status_kib(p, "VmRSS") * 1024 / 1e6) for p in self.pids()]

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM), all the server's processes summed, in MB."""
        return sum(_status_kib(p, "VmHWM") for p in self.pids()) * 1024 / 1e6


class Fleet:
    """Starts servers and stops all of them when the ``with`` block ends, however it ends."""

    def __init__(self, work: Path, cores: str | None) -> None:
        self.work = work
        self.cores = cores
        self.servers: list[Server] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def _start(self, server: Server) -> Server:
        self.servers.append(server)  # before start(): a server that fails to answer is stopped too
        server.start()
        return server

    def baseline(self, app: str = "starlette") -> Server:
        """bench/baseline_app.py serving ``app`` (starlette, asgi, rsgi) on a free port."""
        port = free_port()
        command = [sys.executable, "-m", "bench.baseline_app", "--app", app, "--host",
                   "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
        name = "baseline" if app == "starlette" else f"baseline-{app}"
        return self._start(Server(name, command, port, self.work / f"{name}.log", self.cores))

    def queuey(
        self, name: str, storage_url: str, app: str, key: str, workers: int = 1, pinned: bool = True
    ) -> Server:
        """``queuey serve`` with ``workers`` on ``storage_url``, one application and key.

        ``pinned``: on the server cores (``taskset``); else wherever the kernel puts it.
        """
        port = free_port()
        config = self.work / f"{name}.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\nworkers = {workers}\n\n'
            f'[storage]\nurl = "{storage_url}"\n\n'
            f'[application_keys]\n{app} = ["{key}"]\n',
            encoding="utf-8",
        )
        command = [str(Path(sys.executable).parent / "queuey"), "serve", "--config", str(config),
                   "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers)]  # fmt: skip
        cores = self.cores if pinned else None
        return self._start(Server(name, command, port, self.work / f"{name}.log", cores))
