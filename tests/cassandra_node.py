"""Pytest fixtures that run a real Apache Cassandra for the tests (scripts/cassandra_runner).

The node is started once per test session and stopped at its end (unless it
was already running, e.g. by ``make cassandra``). Tests share one keyspace,
each in a namespace of its own: an empty store without a schema change per
test. Outside CI a machine without Java or Maven skips the Cassandra runs; in
CI (``CI`` set) anything missing fails them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from scripts import cassandra_runner


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere (dramatiq's rule for brokers)."""
    if os.environ.get("CI"):
        pytest.fail(f"Cassandra is required in CI: {reason}")
    pytest.skip(f"Cassandra not available: {reason}")


class Nodes:
    """The local Cassandra nodes of this session: who started them, how many."""

    def __init__(self) -> None:
        self.runner = cassandra_runner
        self.count = 0
        self.started_here = False

    def ensure(self, count: int) -> list[str]:
        runner = self.runner
        if self.count == count and all(runner.is_up(n) for n in range(1, count + 1)):
            return [runner.address(n) for n in range(1, count + 1)]
        running = [n for n in range(1, 4) if runner.is_up(n)]
        if running and self.count == 0 and len(running) == count:
            self.count = count  # started before the session (make cassandra)
            return [runner.address(n) for n in running]
        if running:
            runner.stop()
        try:
            addresses: list[str] = runner.start(
                nodes=count, fresh=True, install_deps=bool(os.environ.get("CI"))
            )
        except runner.CassandraError:
            # A parallel test run started them meanwhile (the port was not open yet
            # when we looked): use them, and leave them to it.
            if [n for n in range(1, 4) if runner.is_up(n)] != list(range(1, count + 1)):
                raise
            addresses = [runner.address(n) for n in range(1, count + 1)]
        else:
            # Only now: a session whose start failed must not stop others' nodes at its end.
            self.started_here = True
        self.count = count
        return addresses

    def close(self) -> None:
        if self.started_here:
            self.runner.stop()


@pytest.fixture(scope="session")
def cassandra_nodes() -> Iterator[Nodes]:
    if not os.environ.get("CI") and not (shutil.which("java") and shutil.which("mvn")):
        unavailable("java and mvn are needed to fetch and run it")
    nodes = Nodes()
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture(scope="session")
def cassandra_single(cassandra_nodes: Nodes) -> str:
    """The contact point of a one-node cluster."""
    try:
        return cassandra_nodes.ensure(1)[0]
    except Exception as exc:  # any failure to start is reported the same way
        unavailable(f"{type(exc).__name__}: {exc}")
        raise


@pytest.fixture(scope="session")
def cassandra_session_keyspace(cassandra_single: str) -> Iterator[str]:
    """One keyspace for the session, dropped at its end."""
    from cassandra.cluster import Cluster

    keyspace = f"t_{uuid.uuid4().hex[:16]}"
    yield keyspace
    cluster = Cluster([cassandra_single], protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture
def cassandra_keyspace(cassandra_single: str, cassandra_session_keyspace: str) -> str:
    """A storage URL whose namespace no other test uses: an empty store, without DDL per test."""
    namespace = uuid.uuid4().hex
    return (
        f"cassandra://{cassandra_single}/{cassandra_session_keyspace}"
        f"?replication=1&namespace={namespace}"
    )
