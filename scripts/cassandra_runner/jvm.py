"""The command line that runs one node: a plain ``java ... CassandraDaemon``.

No Cassandra start scripts: the JVM options are the few that Cassandra 5.0's
``conf/jvm*-server.options`` require on Java 17, plus a small heap and short
startup delays, and the node's own yaml, logback and data directories.
"""

from __future__ import annotations

import functools
import subprocess

from scripts.cassandra_runner.state import LIB, CassandraError, node_dir

# From Cassandra 5.0's conf/jvm17-server.options.
JAVA17_MODULE_FLAGS = [
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
]

_NO_MLOCK_WRAPPER = [
    "setpriv",
    "--bounding-set=-ipc_lock",
    "--",
    "sh",
    "-c",
    'ulimit -l 64 && exec "$0" "$@"',
]


@functools.cache
def no_mlock_prefix() -> tuple[str, ...]:
    """A command prefix that keeps Cassandra from mlockall()ing its memory.

    Cassandra calls mlockall(MCL_CURRENT) at startup; as root that always succeeds
    and makes the whole heap resident (about 900 MiB RSS per node instead of about
    450 MiB).  Dropping CAP_IPC_LOCK and lowering RLIMIT_MEMLOCK makes the call fail
    harmlessly (one "Unable to lock JVM memory" warning).  The wrapper execs, so the
    recorded pid is the JVM's.  Empty where setpriv is missing or not permitted.
    """
    try:
        probe = subprocess.run(
            [*_NO_MLOCK_WRAPPER, "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(_NO_MLOCK_WRAPPER) if probe.returncode == 0 else ()


def storagedir_flag(node: int) -> str:
    """The argument that marks node ``node``'s JVM: unique to this checkout and node."""
    return f"-Dcassandra.storagedir={node_dir(node) / 'data'}"


def java_command(java: str, node: int, heap: str) -> list[str]:
    directory = node_dir(node)
    jamm = sorted(LIB.glob("jamm-*.jar"))
    if not jamm:
        raise CassandraError(f"no jamm jar in {LIB}; run fetch again")
    return [
        *no_mlock_prefix(),
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:+PerfDisableSharedMem",
        "-XX:CICompilerCount=2",
        f"-javaagent:{jamm[-1]}",
        "-Djdk.attach.allowAttachSelf=true",
        *JAVA17_MODULE_FLAGS,
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Djava.net.preferIPv4Stack=true",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{directory / 'cassandra.yaml'}",
        storagedir_flag(node),
        f"-Dcassandra.logdir={directory / 'logs'}",
        f"-Dcassandra.triggers_dir={directory / 'triggers'}",
        f"-Dlogback.configurationFile={directory / 'logback.xml'}",
        f"-Dcassandra.jmx.local.port={7099 + 100 * node}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        # RING_DELAY bounds the startup shadow round, which waits for every other seed
        # (30 s while they are still down).  The quarantine delay derives from it by
        # default, so keep that at its usual 60 s (fat-client timeout 30 s).
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.gossip_quarantine_delay_ms=60000",
        "-Dcassandra.superuser_setup_delay_ms=0",
        "-Dcassandra.available_processors=2",
        "-cp",
        f"{LIB}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]
