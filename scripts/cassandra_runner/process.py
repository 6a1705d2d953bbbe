"""The nodes' JVM processes: launch, find by pid, signal, wait for.

``stop`` and ``kill`` only signal the processes this runner started, found
through the pid file it recorded for each node and checked against the
process's command line, so a recycled pid is never signalled.  If a pid file
is lost (var/ wiped while nodes ran), the JVM is found by its unique
``-Dcassandra.storagedir=.../var/cassandra/nodeN/data`` argument instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from scripts.cassandra_runner import gossip, jvm, probe
from scripts.cassandra_runner.state import (
    MAX_NODES,
    NATIVE_PORT,
    CassandraError,
    address,
    log,
    node_dir,
    pid_file,
    start_timeout,
)

# Processes started by this Python process, so they can be reaped (a killed
# child would otherwise linger as a zombie and still look alive).
_children: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}


def pid_alive(pid: int, node: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) Cassandra process of ``node``."""
    node_and_child = _children.get(pid)
    if node_and_child is not None and node_and_child[0] == node:
        child = node_and_child[1]
        # Our own child: poll() is authoritative (and reaps it).  Its command line
        # is not: it changes, and reads empty, while setpriv and sh exec the JVM.
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return jvm.storagedir_flag(node).encode() in cmdline


def recorded_pid(node: int) -> int | None:
    """The pid of ``node``'s running JVM, or None.

    Normally the pid recorded in ``nodeN/pid``.  If that file is gone (say
    var/ was wiped while the node ran), the process is found by its unique
    ``-Dcassandra.storagedir=<this repo>/var/cassandra/nodeN/data`` argument,
    which only a JVM started by this runner from this checkout carries.
    """
    try:
        pid = int(pid_file(node).read_text().strip())
        if pid_alive(pid, node):
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_alive(int(entry.name), node):
            return int(entry.name)
    return None


def running_nodes() -> list[int]:
    return [n for n in range(1, MAX_NODES + 1) if recorded_pid(n) is not None]


def wait_gone(pid: int, node: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, node):
            return True
        time.sleep(0.2)
    return not pid_alive(pid, node)


def rss_mib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def launch(java: str, node: int, heap: str) -> float:
    """Start ``node`` and wait until it answers CQL; return the seconds it took.

    In a cluster, also wait until the node and the running ones have marked
    each other UP, so that QUORUM works as soon as this returns.
    """
    directory = node_dir(node)
    if probe.port_open(node, timeout=0.5):
        raise CassandraError(
            f"{address(node)}:{NATIVE_PORT} is already in use by a process this runner "
            "did not record; stop it first (pgrep -af CassandraDaemon)"
        )
    others = [n for n in running_nodes() if n != node]
    offsets = {n: gossip.log_size(n) for n in [*others, node]}
    began = time.monotonic()
    with open(directory / "stdout.log", "ab") as out:
        out.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
        out.flush()
        child = subprocess.Popen(
            jvm.java_command(java, node, heap),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = (node, child)
    pid_file(node).write_text(f"{child.pid}\n")
    wait_ready(node, child.pid, began)
    expect = {n: [node] for n in others}
    if others:
        expect[node] = others
    gossip.wait_seen(expect, offsets, "UP")
    return time.monotonic() - began


def wait_ready(node: int, pid: int, began: float) -> None:
    """Wait until ``node`` (process ``pid``) answers CQL; fail if it exits or times out."""
    timeout = start_timeout()
    while True:
        if not pid_alive(pid, node):
            directory = node_dir(node)
            raise CassandraError(
                f"node {node} exited during startup; see {directory}/logs/system.log\n"
                f"--- stdout.log ---\n{_tail(directory / 'stdout.log')}"
            )
        if probe.port_open(node) and probe.cql_ready(node):
            return
        if time.monotonic() - began > timeout:
            raise CassandraError(
                f"node {node} (pid {pid}) not ready after {timeout:.0f}s; "
                f"see {node_dir(node)}/logs/system.log"
            )
        time.sleep(0.5)


def signal_nodes(nodes: list[int], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` to the nodes' JVMs and wait until they exit (SIGKILL after ``timeout``)."""
    pids = {n: recorded_pid(n) for n in nodes}
    for pid in pids.values():
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    for node, pid in pids.items():
        if pid is None:
            log(f"node{node} {address(node)} stopped")
            continue
        if not wait_gone(pid, node, timeout):
            log(f"node{node} pid={pid} still running after {timeout:.0f}s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not wait_gone(pid, node, 30.0):
                raise CassandraError(f"node{node} pid={pid} did not exit")
        pid_file(node).unlink(missing_ok=True)
        verb = "killed" if sig == signal.SIGKILL else "stopped"
        log(f"node{node} {address(node)} {verb} (pid {pid})")
