"""Where the server under test keeps its data: a SQLite file, or a three-node Cassandra cluster.

The cluster is the one :mod:`scripts.cassandra_runner` runs on
127.0.0.1-3: :meth:`Cluster.prepare` stops whatever nodes run there (the
test suite's single node included) and starts three fresh ones;
:meth:`Cluster.close` stops them and starts the single node at 127.0.0.1
again, fresh, which the test suite expects. Queues use consistency
``strong`` with replication 3, so one node down keeps a quorum.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Protocol

from scripts import cassandra_runner as runner
from scripts.cassandra_runner.process import recorded_pid
from scripts.cassandra_runner.state import layout_nodes


class Interference(RuntimeError):
    """Another process changed the shared cluster during the run: its history proves nothing."""


class Backend(Protocol):
    name: str
    storage_url: str
    #: Settle delay written into the configuration (SPEC §4).
    settle: float
    #: Lease of every group: long enough for a claim and an ack under faults.
    lease_seconds: int
    nodes: int
    #: Create the schema with a one-worker server first (see :class:`Cluster`).
    schema_alone: bool

    def prepare(self) -> None: ...

    def kill_node(self, node: int) -> None: ...

    def restart_node(self, node: int) -> None: ...

    def verify(self) -> None:
        """Raise :class:`Interference` if the backend is not as this run left it."""

    def close(self) -> None: ...


class Sqlite:
    """A fresh SQLite file in the run's directory; nothing to start or stop."""

    name = "sqlite"
    settle = 0.0
    lease_seconds = 2
    nodes = 0
    schema_alone = False

    def __init__(self, directory: Path) -> None:
        self.storage_url = f"sqlite:///{directory / 'chaos.db'}"

    def prepare(self) -> None:
        pass

    def kill_node(self, node: int) -> None:
        raise ValueError(f"SQLite has no node {node}: the schedule kills nodes only when nodes > 0")

    def restart_node(self, node: int) -> None:
        raise ValueError(f"SQLite has no node {node}: the schedule kills nodes only when nodes > 0")

    def verify(self) -> None:
        pass

    def close(self) -> None:
        pass


class Cluster:
    """Three local Cassandra nodes, one of which the run SIGKILLs and restarts."""

    name = "cassandra-cluster"
    # Ids made by two workers are not in commit order; a settle delay covers that (SPEC §4).
    # Small, so the run's reads are quick, yet longer than a write takes with a node down.
    settle = 2.0
    lease_seconds = 5
    nodes = 3
    # Two workers starting at once on a fresh keyspace race to create the schema: one's
    # CREATE TABLE IF NOT EXISTS finds the other's table on its coordinator, so the driver
    # waits for no schema agreement, and its PREPARE reaches a node without the table
    # ("table secrets does not exist"); the worker fails and granian stops the server. A
    # start-up bug outside what this run checks: a one-worker start creates the schema first.
    schema_alone = True

    def __init__(self) -> None:
        keyspace = f"chaos_{uuid.uuid4().hex[:12]}"
        hosts = ",".join(runner.address(n) for n in range(1, 4))
        self.storage_url = f"cassandra://{hosts}/{keyspace}?replication=3"
        self.touched = False
        #: The pid each node should have (None: killed by this run); the node being changed.
        self.pids: dict[int, int | None] = {}
        self.changing: int | None = None

    def prepare(self) -> None:
        self.touched = True
        print("Cassandra: stopping the running nodes, starting a fresh 3-node cluster", flush=True)
        runner.stop()
        runner.start(nodes=3, fresh=True)
        self.pids = {n: recorded_pid(n) for n in range(1, 4)}

    def kill_node(self, node: int) -> None:
        self.changing = node
        runner.kill(node)
        self.pids[node] = None
        self.changing = None

    def restart_node(self, node: int) -> None:
        self.verify()
        self.changing = node
        runner.restart_node(node)
        self.pids[node] = recorded_pid(node)
        self.changing = None

    def verify(self) -> None:
        """The cluster is shared (the test suite starts and stops it): check nobody touched it.

        A test session started meanwhile stops nodes it did not start and wipes
        the data; a run that went on would blame Queuey for lost queues.
        """
        if not self.pids:
            return
        if layout_nodes() != 3:
            raise Interference(f"the cluster on disk is now a {layout_nodes()}-node one")
        for node, expected in self.pids.items():
            pid = recorded_pid(node)
            if node != self.changing and pid != expected:
                raise Interference(
                    f"node {node} runs as pid {pid}, this run left it at {expected}: "
                    "another process (a test session?) stopped or started it"
                )

    def close(self) -> None:
        if not self.touched:
            return
        pid = recorded_pid(1)
        if layout_nodes() == 1 and pid is not None and pid not in self.pids.values():
            # Running or still starting: another process's (a test session's); not ours to stop.
            print(f"Cassandra: a single node (pid {pid}, not this run's) runs already; left alone")
            return
        print("Cassandra: stopping the cluster, starting the single node at 127.0.0.1", flush=True)
        runner.stop()
        # Not fresh: a test session may have started the single node meanwhile; then it
        # is left alone. From the 3-node layout, start wipes the data itself.
        runner.start(nodes=1)
