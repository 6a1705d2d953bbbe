"""The verbs on the local cluster: start, restart a node, stop, kill, status.

Each takes the lock on ``var/cassandra/.lock``, so two processes never
interleave them; that only keeps each call whole: two test runs, or a test
run and a person, driving the one cluster of a machine at once will still
stop or wipe each other's nodes.
"""

from __future__ import annotations

import shutil
import signal
import time

from scripts.cassandra_runner import gossip
from scripts.cassandra_runner.config import write_config
from scripts.cassandra_runner.fetch import fetch, find_java
from scripts.cassandra_runner.probe import port_open
from scripts.cassandra_runner.process import (
    launch,
    recorded_pid,
    rss_mib,
    running_nodes,
    signal_nodes,
    wait_ready,
)
from scripts.cassandra_runner.state import (
    DEFAULT_HEAP,
    MAX_NODES,
    NATIVE_PORT,
    CassandraError,
    address,
    check_node,
    layout_heap,
    layout_nodes,
    locked,
    log,
    node_dir,
    write_layout,
)

STOP_TIMEOUT = 60.0


def _wipe(node: int) -> None:
    directory = node_dir(node)
    for name in ("data", "logs"):
        shutil.rmtree(directory / name, ignore_errors=True)
    for name in ("stdout.log", "pid"):
        (directory / name).unlink(missing_ok=True)


def _ensure_node_up(java: str, node: int, heap: str) -> None:
    pid = recorded_pid(node)
    if pid is not None:
        if not port_open(node):
            # Started by an earlier call that has not finished yet, or hung.
            wait_ready(node, pid, time.monotonic())
        log(f"node{node} {address(node)}:{NATIVE_PORT} running pid={pid} (already running)")
        return
    seconds = launch(java, node, heap)
    pid = recorded_pid(node)
    log(f"node{node} {address(node)}:{NATIVE_PORT} running pid={pid} (started in {seconds:.1f}s)")


def start(
    nodes: int = 1,
    heap: str = DEFAULT_HEAP,
    fresh: bool = False,
    install_deps: bool = False,
) -> list[str]:
    """Start a cluster of ``nodes`` local nodes (1 to 3); return their addresses.

    Nodes already running are left alone.  The data is wiped first if ``fresh``
    is true or the existing data belongs to a cluster of a different size;
    both need every node to be stopped.
    """
    if not 1 <= nodes <= MAX_NODES:
        raise CassandraError(f"nodes must be between 1 and {MAX_NODES}, got {nodes}")
    with locked():
        java = find_java(install_deps)
        fetch(install_deps)
        previous = layout_nodes()
        if fresh or (previous and previous != nodes):
            running = running_nodes()
            if running:
                raise CassandraError(
                    f"nodes {running} of a {previous}-node cluster are running; "
                    "stop them before starting a different or fresh cluster"
                )
            log(f"wiping data of the previous {previous or nodes}-node cluster")
            for node in range(1, MAX_NODES + 1):
                _wipe(node)
        write_layout(nodes, heap)
        for node in range(1, nodes + 1):
            if recorded_pid(node) is None:
                write_config(node, nodes)
            _ensure_node_up(java, node, heap)
    return [address(n) for n in range(1, nodes + 1)]


def restart_node(node: int) -> None:
    """Start one stopped (or killed) node of the current cluster again, same data.

    Returns once the node answers CQL and the other running nodes see it.
    """
    check_node(node)
    with locked():
        nodes = layout_nodes()
        if node > nodes:
            raise CassandraError(f"node {node} is not part of the {nodes}-node cluster")
        java = find_java(False)
        fetch()
        if recorded_pid(node) is None:
            write_config(node, nodes)
        _ensure_node_up(java, node, layout_heap())


def _stop_one(node: int, sig: signal.Signals, timeout: float, wait_down: bool) -> None:
    """Signal one node; with ``wait_down``, wait until the running others see it DOWN."""
    was_running = recorded_pid(node) is not None
    others = [n for n in running_nodes() if n != node]
    offsets = {n: gossip.log_size(n) for n in others}
    began = time.monotonic()
    signal_nodes([node], sig, timeout)
    if wait_down and was_running and others:
        gossip.wait_seen({n: [node] for n in others}, offsets, "DOWN")
        log(f"node{node} seen DOWN by nodes {others} after {time.monotonic() - began:.1f}s")


def stop(node: int | None = None) -> None:
    """Stop one node, or all, gracefully (SIGTERM; SIGKILL after a timeout).

    A node stopped alone announces its shutdown, so the others mark it DOWN at
    once; this returns after they have.
    """
    if node is not None:
        check_node(node)
    with locked():
        if node is not None:
            _stop_one(node, signal.SIGTERM, STOP_TIMEOUT, wait_down=True)
            return
        targets = [n for n in range(1, MAX_NODES + 1) if node_dir(n).is_dir() or recorded_pid(n)]
        signal_nodes(targets, signal.SIGTERM, STOP_TIMEOUT)


def kill(node: int, wait_down: bool = True) -> None:
    """SIGKILL one node (for failure tests).

    Returns once the process is gone and, with ``wait_down`` (the default), once
    every other running node's failure detector has convicted it (typically
    10-20 s after the kill).  Until then coordinators still count it as a live
    replica: QUORUM with two of three nodes killed times out instead of failing
    with Unavailable, and range reads routed to it time out.
    """
    check_node(node)
    with locked():
        _stop_one(node, signal.SIGKILL, 30.0, wait_down)


def is_up(node: int) -> bool:
    """Whether node ``node`` runs (recorded pid alive) and answers on its CQL port."""
    check_node(node)
    return recorded_pid(node) is not None and port_open(node)


def status() -> list[str]:
    """One line per configured node: running/stopped, pid, address, RSS."""
    lines = []
    count = max([layout_nodes()] + [n for n in range(1, MAX_NODES + 1) if node_dir(n).is_dir()])
    for node in range(1, count + 1):
        pid = recorded_pid(node)
        where = f"{address(node)}:{NATIVE_PORT}"
        if pid is None:
            lines.append(f"node{node} stopped {where}")
        elif port_open(node):
            lines.append(f"node{node} running pid={pid} {where} rss={rss_mib(pid)}MiB")
        else:
            lines.append(f"node{node} starting pid={pid} {where} (CQL port not answering yet)")
    return lines or ["no nodes configured"]
