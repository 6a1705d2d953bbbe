"""A peer's server process: a bench Server whose readiness is probed its own way.

bench/servers.py's Server waits for Queuey's ``/__lbheartbeat__``; a peer
answers elsewhere (ElasticMQ's SQS API, Centrifugo's ``/health``, NATS's
monitoring ``/healthz``). Everything else (``taskset`` pinning, its own
session, SIGTERM then SIGKILL of the whole group, memory figures) is the
Server's, and a :class:`bench.servers.Fleet` stops it like any other.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.servers import ROOT, Fleet, Server

Probe = Callable[[], bool]
"""True once the server answers as it should."""


def http_ok(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Probe:
    """A probe: ``url`` answers 200 to a GET, or to a POST of ``body``."""

    def probe() -> bool:
        method = "GET" if body is None else "POST"
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.request(method, url, content=body, headers=headers, timeout=1)
            return answer.status_code == 200
        return False

    return probe


class PeerServer(Server):
    """A peer's command, pinned like Queuey's servers, ready when ``probe`` says so."""

    def __init__(
        self, name: str, command: list[str], port: int, log: Path, cores: str | None, probe: Probe
    ) -> None:
        super().__init__(name, command, port, log, cores)
        self.probe = probe

    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.probe():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer in {timeout:g} s: {self.log.read_text()[-4000:]}"
                )
            time.sleep(0.2)


def start(fleet: Fleet, server: PeerServer) -> PeerServer:
    """Start ``server`` as one of ``fleet``'s, so that the fleet stops it however it ends."""
    fleet.servers.append(server)  # before start(): one that never answers is stopped too
    server.start()
    return server
