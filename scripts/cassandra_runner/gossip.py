"""Whether the nodes have seen each other go UP or DOWN, read from their system.log.

Cassandra's Gossiper logs "InetAddress <peer> is now UP" once it has marked a
peer alive (after the echo round trip) and "... is now DOWN" once the failure
detector convicted it.  That is the moment coordinators route around the
peer, and the moment QUORUM starts to fail fast with Unavailable instead of
timing out: start, kill and stop wait for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from scripts.cassandra_runner.state import STORAGE_PORT, CassandraError, address, node_dir

GOSSIP_TIMEOUT = 90.0  # seconds for peers to see a node go UP or DOWN


def system_log(node: int) -> Path:
    return node_dir(node) / "logs" / "system.log"


def log_size(node: int) -> int:
    """Where node ``node``'s log ends now: what it logs later is read from there."""
    try:
        return system_log(node).stat().st_size
    except OSError:
        return 0


def _log_since(node: int, offset: int) -> str:
    try:
        with open(system_log(node), "rb") as handle:
            if handle.seek(0, os.SEEK_END) < offset:
                offset = 0  # log was replaced
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def wait_seen(expect: dict[int, list[int]], offsets: dict[int, int], state: str) -> None:
    """Wait until each node ``m`` in ``expect`` has logged every ``expect[m]`` as ``state``.

    ``state`` is UP or DOWN.  Only what each log gained after ``offsets[m]``
    counts.
    """
    deadline = time.monotonic() + GOSSIP_TIMEOUT
    missing = dict(expect)
    while True:
        missing = {
            m: [
                n
                for n in peers
                if f"/{address(n)}:{STORAGE_PORT} is now {state}"
                not in _log_since(m, offsets.get(m, 0))
            ]
            for m, peers in missing.items()
        }
        missing = {m: peers for m, peers in missing.items() if peers}
        if not missing:
            return
        if time.monotonic() > deadline:
            detail = "; ".join(f"node{m} has not seen {peers}" for m, peers in missing.items())
            raise CassandraError(
                f"gossip: not all nodes saw the change to {state} in {GOSSIP_TIMEOUT:.0f}s: "
                f"{detail}"
            )
        time.sleep(0.25)
