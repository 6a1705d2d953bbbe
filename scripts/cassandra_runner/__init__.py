"""Assemble Apache Cassandra 5.0 from Maven Central and run 1 or 3 local nodes.

Standard library only: it fetches ``org.apache.cassandra:cassandra-all`` and
its runtime dependencies with Maven (:mod:`.fetch`), writes a small,
fast-starting configuration per node (:mod:`.config`) and runs each node as a
plain ``java ... org.apache.cassandra.service.CassandraDaemon`` process
(:mod:`.jvm`, :mod:`.process`).  Run from the repository root::

    python -m scripts.cassandra_runner start [--nodes 1|3] [--heap 512m] [--fresh]
    python -m scripts.cassandra_runner stop [--node N]
    python -m scripts.cassandra_runner kill --node N [--no-wait]
    python -m scripts.cassandra_runner status
    python -m scripts.cassandra_runner fetch

``start`` fetches the jars if missing, writes the per-node configuration and
starts the nodes one after another.  Node N listens on 127.0.0.N (CQL port
9042, internode port 7000, local-only JMX on 7099 + 100 * N).  A node counts
as ready once a CQL ``SELECT`` on it succeeds (:mod:`.probe`) and, in a
cluster, once it and the running nodes have marked each other UP in gossip
(:mod:`.gossip`), so QUORUM works as soon as ``start`` returns.  Nodes already
running are left alone, so ``start`` is idempotent.  Starting with a different
node count than the data on disk was made with (or with ``--fresh``) wipes the
nodes' data first; that needs all nodes to be stopped.  A 1-node start takes
about 10 s on 2 cores, a 3-node start about 40 s, restarting one killed node
about 15 s.

``kill`` SIGKILLs one node and, unless ``--no-wait``, returns only once the
other running nodes' failure detectors have convicted it (10-25 s): until then
coordinators still count it as a live replica, so QUORUM with two of three
nodes killed times out rather than failing with Unavailable.  ``stop --node N``
shuts one node down gracefully; the others see it DOWN at once.

The nodes use 127.0.0.1-3 and fixed ports: one cluster per machine at a time
(:mod:`.cluster` says what the lock does and does not prevent).

State lives in ``var/cassandra/`` at the repository root::

    var/cassandra/
        lib/              jars from Maven Central (reused; ``.complete`` marks them whole)
        fetch/pom.xml     throw-away POM used to fetch them
        cluster.json      node count and heap of the current cluster
        nodeN/            cassandra.yaml, logback.xml, data/, logs/system.log,
                          pid, stdout.log (JVM stdout/stderr, warnings and errors)

If ``java`` or ``mvn`` is missing, ``--install-deps`` (or the environment
variable ``CI`` being set) installs them with
``apt-get install -y openjdk-17-jre-headless maven``.

Test fixtures and the bench import the functions below from this package.

Environment: ``CASSANDRA_START_TIMEOUT`` (seconds per node, default 240).
"""

from scripts.cassandra_runner.cluster import is_up, kill, restart_node, start, status, stop
from scripts.cassandra_runner.fetch import CASSANDRA_VERSION, fetch, jars_present
from scripts.cassandra_runner.state import MAX_NODES, CassandraError, address
from scripts.cassandra_runner.wire import cql_rows

__all__ = [
    "CASSANDRA_VERSION",
    "MAX_NODES",
    "CassandraError",
    "address",
    "cql_rows",
    "fetch",
    "is_up",
    "jars_present",
    "kill",
    "restart_node",
    "start",
    "status",
    "stop",
]
