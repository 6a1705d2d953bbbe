"""What every verb shares: node addresses and ports, and the files under var/cassandra.

State lives in ``var/cassandra/`` at the repository root; its layout is kept
stable so that nodes started by an earlier version of the runner are
recognised (their pid files, and the ``-Dcassandra.storagedir`` argument their
JVMs carry, point into it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

MAX_NODES = 3
NATIVE_PORT = 9042
STORAGE_PORT = 7000
DEFAULT_HEAP = "512m"

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "var" / "cassandra"
LIB = STATE / "lib"
LAYOUT_FILE = STATE / "cluster.json"


class CassandraError(RuntimeError):
    """A node could not be fetched, configured, started or stopped."""


def log(message: str) -> None:
    print(message, flush=True)


def address(node: int) -> str:
    """Return the IP address node ``node`` listens on (127.0.0.N)."""
    return f"127.0.0.{node}"


def check_node(node: int) -> None:
    if not 1 <= node <= MAX_NODES:
        raise CassandraError(f"node must be between 1 and {MAX_NODES}, got {node}")


def node_dir(node: int) -> Path:
    return STATE / f"node{node}"


def pid_file(node: int) -> Path:
    return node_dir(node) / "pid"


def start_timeout() -> float:
    return float(os.environ.get("CASSANDRA_START_TIMEOUT", "240"))


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialize start/stop/kill across processes (e.g. parallel test workers)."""
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_layout() -> dict[str, object]:
    try:
        data = json.loads(LAYOUT_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def layout_nodes() -> int:
    """The node count of the cluster whose data is on disk (0 if none)."""
    value = _read_layout().get("nodes")
    return value if isinstance(value, int) else 0


def layout_heap() -> str:
    value = _read_layout().get("heap")
    return value if isinstance(value, str) else DEFAULT_HEAP


def write_layout(nodes: int, heap: str) -> None:
    LAYOUT_FILE.write_text(json.dumps({"nodes": nodes, "heap": heap}) + "\n")
