"""Shared fixtures: real stores, the app over in-process HTTP, real server processes.

Every storage and API test runs once per backend (``backend_url``): SQLite
always, on a fresh file; Cassandra on a real node that the test tooling starts
(``tests/cassandra_node.py``). Outside CI a machine without Java skips the
Cassandra runs; in CI a missing Cassandra fails them.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from queuey.api.app import create_app, storage_for
from queuey.config import Settings
from queuey.storage.base import Storage

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"app1": ("key1",), "app2": ("key2",), "app3": ("key3a", "key3b")}
ALLOWED_ORIGIN = "http://allowed.example"
#: The disk-full reserve of test stores (storage.reserve_bytes): enough to exercise it.
RESERVE = 64 * 1024

#: Backends every storage and API test runs against; a developer may narrow them
#: with QUEUEY_TEST_BACKENDS=sqlite for a quick local run (CI never sets it).
BACKENDS = os.environ.get("QUEUEY_TEST_BACKENDS", "sqlite,cassandra").split(",")

pytest_plugins = ["tests.cassandra_node", "tests.browser_support"]


def auth(*keys: str) -> dict[str, str]:
    """An Authorization header carrying these application keys."""
    return {"Authorization": "; ".join(f"Application {k}" for k in keys)}


APP1 = auth("key1")
APP2 = auth("key2")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every ``async def`` test on anyio's asyncio backend."""
    if collector.funcnamefilter(name) and inspect.iscoroutinefunction(obj):  # type: ignore[attr-defined]
        pytest.mark.anyio(obj)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cluster tests last: they replace the one-node Cassandra with three nodes."""
    items.sort(key=lambda item: item.get_closest_marker("cluster") is not None)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL on a fresh, empty store of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queuey.db'}"
    keyspace_url: str = request.getfixturevalue("cassandra_keyspace")
    return keyspace_url


@pytest.fixture
def settings(backend_url: str) -> Settings:
    return Settings(
        storage_url=backend_url,
        application_keys=KEYS,
        cors_origins=(ALLOWED_ORIGIN,),
        max_message_bytes=1024,
        max_request_bytes=64 * 1024,
        # Small settle delays keep Cassandra range reads quick in tests.
        storage_settle_weak=0.0,
        storage_settle_strong=0.0,
        storage_settle_very_strong=0.0,
        # The disk-full reserve (8 MiB by default) of hundreds of test files would take GBs.
        storage_reserve_bytes=RESERVE,
        # Scoped tokens can be minted (SPEC §8), as on a server that `queuey init` configured.
        token_secret=("test token secret",),
    )


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[Storage]:
    """A started store of each backend."""
    store = storage_for(settings)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app of ``settings`` over in-process HTTP (httpx over ASGI), its lifespan running."""
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as c:
            yield c


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over in-process HTTP (httpx over ASGI), with its lifespan running."""
    async with connect(settings) as c:
        yield c


async def make_queue(client: httpx.AsyncClient, **fields: object) -> str:
    """Create a queue of app1 and return its name."""
    fields.setdefault("queue_name", f"q{uuid.uuid4().hex[:12]}")
    response = await client.post("/v1/app1", json=fields, headers=APP1)
    assert response.status_code == 201, response.text
    name: str = response.json()["queue_name"]
    return name


# -- real server processes ------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(path: Path, storage_url: str, port: int) -> Path:
    keys = "\n".join(f'{app} = ["{k[0]}"]' for app, k in KEYS.items())
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[storage]\nurl = "{storage_url}"\nsettle_weak = 0.0\nsettle_strong = 0.0\n'
        f"reserve_bytes = {RESERVE}\n\n"
        f"[application_keys]\n{keys}\n",
        encoding="utf-8",
    )
    return path


class Server:
    """A ``queuey serve`` process on a free port, stopped when done."""

    def __init__(self, config: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.with_suffix(f".{self.port}.log")
        self.command = [
            sys.executable, "-m", "queuey.cli", "serve",
            "--config", str(config), "--port", str(self.port), *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Server:
        with self.log.open("wb") as log:
            # A session of its own: killing the group also kills granian's workers,
            # which outlive a SIGKILL of the main process alone.
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"queuey serve exited: {self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/__heartbeat__", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"queuey serve did not answer in {timeout}s: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the server and its workers (a crash), and reap it."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:  # workers left behind, if any
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Server]]:
    """Start servers with ``serve(config_path, *flags).start()``; all stop at the end."""
    started: list[Server] = []

    class Tracked(Server):
        def start(self, timeout: float = 30.0) -> Server:
            started.append(self)
            return super().start(timeout)

    try:
        yield Tracked
    finally:
        for server in started:
            server.stop()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
