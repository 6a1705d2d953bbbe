"""``queuey serve`` as a real process: started, SIGKILLed and started again on one port.

The server runs in a process group of its own and is killed as a whole:
granian's workers are children of the main process, and a SIGKILL of the
main process alone leaves them serving on the inherited socket. A crash of
the machine's Queuey is all of its processes dying at once, so that is what
:meth:`ServerProcess.kill` does. It restarts on the same port (the socket is
bound with ``SO_REUSEADDR``), so clients need not be told where it went.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    path: Path, storage_url: str, port: int, key: str, settle: float, workers: int
) -> Path:
    """A configuration for the application ``chaos``; settle delays as given (Cassandra)."""
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nworkers = {workers}\n\n'
        f'[storage]\nurl = "{storage_url}"\n'
        f"settle_weak = {settle}\nsettle_strong = {settle}\nsettle_very_strong = {settle}\n\n"
        f'[application_keys]\nchaos = ["{key}"]\n',
        encoding="utf-8",
    )
    return path


class ServerProcess:
    """One ``queuey serve``; :meth:`start` may be called again after :meth:`kill`."""

    def __init__(self, config: Path, port: int, root: Path = ROOT) -> None:
        self.config = config
        #: The checkout whose ``queuey`` runs: its directory comes first on the path.
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None
        #: True from a kill until the next start: the watchdog then expects it down.
        self.down_on_purpose = True

    @property
    def log(self) -> Path:
        return self.config.with_name(f"server.{self.runs}.log")

    def start(self, timeout: float = 120.0, workers: int | None = None) -> None:
        """Start it; return once ``/__heartbeat__`` answered 200 (storage up) 5 times in a row.

        Several answers, as each worker opens its storage on its own and one that
        fails takes the whole server down (granian stops when a worker exits).
        """
        self.runs += 1
        command = [
            sys.executable, "-m", "queuey.cli", "serve",
            "--config", str(self.config), "--port", str(self.port),
        ]  # fmt: skip
        if workers is not None:
            command += ["--workers", str(workers)]
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        healthy = 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"queuey serve exited: {self.log_tail()}")
            try:
                healthy = healthy + 1 if self._heartbeat() else 0
            except httpx.HTTPError:
                healthy = 0
            if healthy >= 5:
                self.down_on_purpose = False
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"queuey serve did not answer in {timeout}s: {self.log_tail()}")

    def _heartbeat(self) -> bool:
        return httpx.get(f"{self.url}/__heartbeat__", timeout=2).status_code == 200

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server and every worker of it, and wait until they are gone."""
        self.down_on_purpose = True
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self._wait_group_gone(STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop it gracefully (SIGTERM), SIGKILL after a timeout; nothing if not running."""
        self.down_on_purpose = True
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)
        if not self._wait_group_gone(STOP_TIMEOUT):
            self.kill()

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        # The group's id is the main process's pid (start_new_session); workers share it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def _wait_group_gone(self, timeout: float) -> bool:
        if self.process is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not group_alive(self.process.pid):
                return True
            time.sleep(0.05)
        return False


def group_alive(group: int) -> bool:
    """Whether a process of this process group still runs (zombies do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == group and fields[0] != "Z":
            return True
    return False
