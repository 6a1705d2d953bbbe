"""Readiness: is a node's CQL port open, and does it answer a query?

A node counts as ready once ``SELECT release_version FROM system.local`` on it
returns a row.  The query goes through cassandra-driver when it can be
imported (it is in the venv); without it (the system ``python3``) the small
built-in client of :mod:`scripts.cassandra_runner.wire` asks instead.
"""

from __future__ import annotations

import socket

from scripts.cassandra_runner.state import NATIVE_PORT, CassandraError, address
from scripts.cassandra_runner.wire import cql_rows

READY_QUERY = "SELECT release_version FROM system.local"


def port_open(node: int, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on node ``node``'s CQL port."""
    try:
        with socket.create_connection((address(node), NATIVE_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def _ready_with_driver(node: int, timeout: float) -> bool | None:
    """The driver's answer, or None when the driver cannot be imported."""
    try:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import WhiteListRoundRobinPolicy
    except ImportError:
        return None
    # Only this node: the driver would otherwise also use the peers it discovers.
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([address(node)]),
        consistency_level=ConsistencyLevel.ONE,
        request_timeout=timeout,
    )
    cluster = Cluster(
        [address(node)],
        port=NATIVE_PORT,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        schema_metadata_enabled=False,
        token_metadata_enabled=False,
    )
    try:
        return cluster.connect().execute(READY_QUERY).one() is not None
    # The driver's failures have no common base (NoHostAvailable, OperationTimedOut,
    # server errors): any of them means "not ready yet".
    except Exception:  # noqa: BLE001
        return False
    finally:
        cluster.shutdown()


def cql_ready(node: int, timeout: float = 5.0) -> bool:
    """Whether node ``node`` answers a CQL SELECT."""
    ready = _ready_with_driver(node, timeout)
    if ready is not None:
        return ready
    try:
        return bool(cql_rows(node, READY_QUERY, timeout=timeout))
    except (OSError, CassandraError):
        return False
