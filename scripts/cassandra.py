#!/usr/bin/env python3
"""Assemble Apache Cassandra 5.0 from Maven Central and run 1 or 3 local nodes.

Cassandra is not packaged by Debian and its download site is out of reach on
the project's machines, but the server is published on Maven Central as
``org.apache.cassandra:cassandra-all``.  This script (standard library only)
fetches that jar and its runtime dependencies with Maven, writes a small,
fast-starting configuration per node and runs each node as a plain
``java ... org.apache.cassandra.service.CassandraDaemon`` process.

Commands::

    python3 scripts/cassandra.py start [--nodes 1|3] [--heap 512m] [--fresh]
    python3 scripts/cassandra.py stop [--node N]
    python3 scripts/cassandra.py kill --node N [--no-wait]
    python3 scripts/cassandra.py status
    python3 scripts/cassandra.py fetch

``start`` fetches the jars if missing, writes the per-node configuration and
starts the nodes one after another.  Node N listens on 127.0.0.N (CQL port
9042, internode port 7000, local-only JMX on 7099 + 100 * N).  A node counts
as ready once a CQL ``SELECT`` on it succeeds (spoken with a tiny built-in
native-protocol v4 client) and, in a cluster, once it and the running nodes
have marked each other UP in gossip (read from their logs), so QUORUM works as
soon as ``start`` returns.  Nodes already running are left alone, so
``start`` is idempotent.  Starting with a different node count than the data
on disk was made with (or with ``--fresh``) wipes the nodes' data first; that
needs all nodes to be stopped.  A 1-node start takes about 10 s on 2 cores, a
3-node start about 40 s, restarting one killed node about 15 s.

``kill`` SIGKILLs one node and, unless ``--no-wait``, returns only once the
other running nodes' failure detectors have convicted it (10-25 s): until then
coordinators still count it as a live replica, so QUORUM with two of three
nodes killed times out rather than failing with Unavailable.  ``stop --node N``
shuts one node down gracefully; the others see it DOWN at once.

``stop`` and ``kill`` only signal the processes this script started, found
through the pid file it recorded for each node and checked against the
process's command line, so a recycled pid is never signalled.  If a pid file
is lost (var/ wiped while nodes ran), the JVM is found by its unique
``-Dcassandra.storagedir=.../var/cassandra/nodeN/data`` argument instead.

The nodes use 127.0.0.1-3 and fixed ports: one cluster per machine at a time.
Two processes driving it at once (two test runs, or a test run and a person)
will stop or wipe each other's nodes; start/stop/kill are serialized by a lock
file, but that only keeps each call whole.

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

The module is importable (e.g. with importlib from its path) by test
fixtures: ``start``, ``stop``, ``kill``, ``restart_node``, ``is_up``,
``address`` and ``status`` are its public functions.

Environment: ``CASSANDRA_START_TIMEOUT`` (seconds per node, default 240).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

CASSANDRA_VERSION = "5.0.8"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MAX_NODES = 3
CLUSTER_NAME = "queuey"
NATIVE_PORT = 9042
STORAGE_PORT = 7000
DEFAULT_HEAP = "512m"
STOP_TIMEOUT = 60.0
GOSSIP_TIMEOUT = 90.0  # seconds for peers to see a node go UP or DOWN

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "var" / "cassandra"
LIB = STATE / "lib"
LIB_MARKER = LIB / ".complete"
LAYOUT_FILE = STATE / "cluster.json"

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

# Processes started by this Python process, so they can be reaped (a killed
# child would otherwise linger as a zombie and still look alive).
_children: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}


class CassandraError(RuntimeError):
    """A node could not be fetched, configured, started or stopped."""


# --------------------------------------------------------------------------- helpers


def _log(message: str) -> None:
    print(message, flush=True)


def address(node: int) -> str:
    """Return the IP address node ``node`` listens on (127.0.0.N)."""
    return f"127.0.0.{node}"


def _node_dir(node: int) -> Path:
    return STATE / f"node{node}"


def _pid_file(node: int) -> Path:
    return _node_dir(node) / "pid"


def _check_node(node: int) -> None:
    if not 1 <= node <= MAX_NODES:
        raise CassandraError(f"node must be between 1 and {MAX_NODES}, got {node}")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
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


def _layout_nodes() -> int:
    value = _read_layout().get("nodes")
    return value if isinstance(value, int) else 0


def _layout_heap() -> str:
    value = _read_layout().get("heap")
    return value if isinstance(value, str) else DEFAULT_HEAP


def _start_timeout() -> float:
    return float(os.environ.get("CASSANDRA_START_TIMEOUT", "240"))


# --------------------------------------------------------------------------- tools


def _install_allowed(install_deps: bool) -> bool:
    return install_deps or bool(os.environ.get("CI"))


def _apt_install() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _log("installing openjdk-17-jre-headless and maven with apt-get")
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "openjdk-17-jre-headless", "maven"],
    ):
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)


def _java_major(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    for word in (result.stderr + result.stdout).split():
        token = word.strip('"')
        if token[:1].isdigit():
            head = token.split(".")
            major = int(head[1]) if head[0] == "1" and len(head) > 1 else int(head[0])
            return major
    return 0


def _find_java(install_deps: bool) -> str:
    """Return a Java 11 or 17 executable (Cassandra 5.0 supports nothing else)."""
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("java-17-*/bin/java"))
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("java-11-*/bin/java"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and _java_major(candidate) in (11, 17):
            return candidate
    if _install_allowed(install_deps):
        _apt_install()
        return _find_java(install_deps=False)
    raise CassandraError(
        "no Java 11 or 17 found; install openjdk-17-jre-headless (or rerun with --install-deps)"
    )


def _find_mvn(install_deps: bool) -> str:
    mvn = shutil.which("mvn")
    if mvn:
        return mvn
    if _install_allowed(install_deps):
        _apt_install()
        mvn = shutil.which("mvn")
        if mvn:
            return mvn
    raise CassandraError("mvn not found; install maven (or rerun with --install-deps)")


# --------------------------------------------------------------------------- fetch

POM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.queuey</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def jars_present() -> bool:
    """Whether a complete set of jars for CASSANDRA_VERSION is in var/cassandra/lib."""
    try:
        return LIB_MARKER.read_text().strip() == CASSANDRA_VERSION
    except OSError:
        return False


def fetch(install_deps: bool = False) -> Path:
    """Fetch cassandra-all and its runtime dependencies into var/cassandra/lib.

    Reuses the jars if already there and ~/.m2 for everything Maven downloads.
    Returns the lib directory.
    """
    if jars_present():
        return LIB
    mvn = _find_mvn(install_deps)
    _find_java(install_deps)  # Maven needs a JVM too.
    fetch_dir = STATE / "fetch"
    fetch_dir.mkdir(parents=True, exist_ok=True)
    pom = fetch_dir / "pom.xml"
    pom.write_text(POM_TEMPLATE.format(version=CASSANDRA_VERSION))
    staging = STATE / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    _log(f"fetching Cassandra {CASSANDRA_VERSION} jars with Maven into {LIB}")
    began = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    jars = sorted(staging.glob("*.jar")) if staging.is_dir() else []
    main_jar = staging / f"cassandra-all-{CASSANDRA_VERSION}.jar"
    if result.returncode != 0 or not main_jar.is_file():
        raise CassandraError(
            f"mvn failed (exit {result.returncode}):\n{result.stdout[-4000:]}"
            f"{result.stderr[-4000:]}"
        )
    shutil.rmtree(LIB, ignore_errors=True)
    staging.rename(LIB)
    LIB_MARKER.write_text(CASSANDRA_VERSION + "\n")
    _log(f"fetched {len(jars)} jars in {time.monotonic() - began:.1f}s")
    return LIB


# --------------------------------------------------------------------------- config


def _initial_token(node: int, nodes: int) -> int:
    return (node - 1) * (2**64 // nodes) - 2**63


def _yaml(node: int, nodes: int) -> str:
    ip = address(node)
    seeds = ",".join(f"{address(n)}:{STORAGE_PORT}" for n in range(1, nodes + 1))
    return f"""\
# Written by scripts/cassandra.py; rewritten on every start.
cluster_name: {CLUSTER_NAME}
num_tokens: 1
initial_token: {_initial_token(node, nodes)}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
dynamic_snitch: false
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seeds}"
listen_address: {ip}
rpc_address: {ip}
storage_port: {STORAGE_PORT}
native_transport_port: {NATIVE_PORT}
start_native_transport: true
auto_bootstrap: false
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 16MiB
auto_snapshot: false
snapshot_before_compaction: false
memtable_allocation_type: heap_buffers
disk_access_mode: standard
user_defined_functions_enabled: false
materialized_views_enabled: false
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_compactors: 1
native_transport_max_threads: 32
"""


LOGBACK = """\
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>{logs}/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %logger{{0}} - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %logger{{0}} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""


def _write_config(node: int, nodes: int) -> None:
    directory = _node_dir(node)
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "triggers").mkdir(parents=True, exist_ok=True)
    (directory / "cassandra.yaml").write_text(_yaml(node, nodes))
    (directory / "logback.xml").write_text(LOGBACK.format(logs=directory / "logs"))


_NO_MLOCK_WRAPPER = [
    "setpriv",
    "--bounding-set=-ipc_lock",
    "--",
    "sh",
    "-c",
    'ulimit -l 64 && exec "$0" "$@"',
]


@functools.cache
def _no_mlock_prefix() -> tuple[str, ...]:
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


def _java_command(java: str, node: int, heap: str) -> list[str]:
    directory = _node_dir(node)
    jamm = sorted(LIB.glob("jamm-*.jar"))
    if not jamm:
        raise CassandraError(f"no jamm jar in {LIB}; run fetch again")
    return [
        *_no_mlock_prefix(),
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
        f"-Dcassandra.storagedir={directory / 'data'}",
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


# --------------------------------------------------------------------------- processes


def _proc_marker(node: int) -> str:
    return f"-Dcassandra.storagedir={_node_dir(node) / 'data'}"


def _pid_alive(pid: int, node: int) -> bool:
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
    return _proc_marker(node).encode() in cmdline


def _recorded_pid(node: int) -> int | None:
    """The pid of ``node``'s running JVM, or None.

    Normally the pid recorded in ``nodeN/pid``.  If that file is gone (say
    var/ was wiped while the node ran), the process is found by its unique
    ``-Dcassandra.storagedir=<this repo>/var/cassandra/nodeN/data`` argument,
    which only a JVM started by this script from this checkout carries.
    """
    try:
        pid = int(_pid_file(node).read_text().strip())
        if _pid_alive(pid, node):
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _pid_alive(int(entry.name), node):
            return int(entry.name)
    return None


def _port_open(node: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address(node), NATIVE_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def is_up(node: int) -> bool:
    """Whether node ``node`` runs (recorded pid alive) and answers on its CQL port."""
    _check_node(node)
    return _recorded_pid(node) is not None and _port_open(node)


def _wait_gone(pid: int, node: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid, node):
            return True
        time.sleep(0.2)
    return not _pid_alive(pid, node)


def _rss_mib(pid: int) -> int:
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


# --------------------------------------------------------------------------- CQL probe
#
# Just enough of the CQL native protocol (v4) to run a query on a node
# without a driver: STARTUP, QUERY and the Rows result.

_OP_ERROR, _OP_STARTUP, _OP_READY, _OP_QUERY, _OP_RESULT = 0x00, 0x01, 0x02, 0x07, 0x08


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        if len(chunk) != size:
            raise CassandraError("truncated CQL frame")
        self.pos += size
        return chunk

    def read_int(self) -> int:
        value: int = struct.unpack(">i", self.take(4))[0]
        return value

    def read_short(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def read_string(self) -> str:
        return self.take(self.read_short()).decode()

    def read_bytes(self) -> bytes | None:
        size = self.read_int()
        return None if size < 0 else self.take(size)

    def read_option(self) -> None:
        kind = self.read_short()
        if kind == 0x0000:
            self.read_string()
        elif kind in (0x0020, 0x0022):
            self.read_option()
        elif kind == 0x0021:
            self.read_option()
            self.read_option()
        elif kind == 0x0030:
            self.read_string()
            self.read_string()
            for _ in range(self.read_short()):
                self.read_string()
                self.read_option()
        elif kind == 0x0031:
            for _ in range(self.read_short()):
                self.read_option()


def _cql_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">H", len(data)) + data


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise CassandraError("connection closed by node")
        chunks += chunk
    return bytes(chunks)


def _exchange(sock: socket.socket, opcode: int, body: bytes) -> tuple[int, _Reader]:
    sock.sendall(struct.pack(">BBhBi", 0x04, 0, 0, opcode, len(body)) + body)
    _version, _flags, _stream, reply, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    reader = _Reader(_recv_exact(sock, length))
    if reply == _OP_ERROR:
        code = reader.read_int()
        raise CassandraError(f"CQL error 0x{code:04x}: {reader.read_string()}")
    return reply, reader


def cql_rows(node: int, query: str, timeout: float = 10.0) -> list[list[bytes | None]]:
    """Run ``query`` at consistency ONE on ``node`` and return raw row values."""
    with socket.create_connection((address(node), NATIVE_PORT), timeout=timeout) as sock:
        startup = struct.pack(">H", 1) + _cql_string("CQL_VERSION") + _cql_string("3.0.0")
        reply, _ = _exchange(sock, _OP_STARTUP, startup)
        if reply != _OP_READY:
            raise CassandraError(f"unexpected reply 0x{reply:02x} to STARTUP")
        encoded = query.encode()
        body = struct.pack(">i", len(encoded)) + encoded + struct.pack(">HB", 0x0001, 0)
        reply, reader = _exchange(sock, _OP_QUERY, body)
    if reply != _OP_RESULT:
        raise CassandraError(f"unexpected reply 0x{reply:02x} to QUERY")
    if reader.read_int() != 0x0002:  # not a Rows result
        return []
    flags, columns = reader.read_int(), reader.read_int()
    if flags & 0x0002:
        reader.read_bytes()
    if not flags & 0x0004:
        if flags & 0x0001:
            reader.read_string()
            reader.read_string()
        for _ in range(columns):
            if not flags & 0x0001:
                reader.read_string()
                reader.read_string()
            reader.read_string()
            reader.read_option()
    return [[reader.read_bytes() for _ in range(columns)] for _ in range(reader.read_int())]


def _cql_ready(node: int) -> bool:
    try:
        return bool(cql_rows(node, "SELECT release_version FROM system.local", timeout=5.0))
    except (OSError, CassandraError):
        return False


def _system_log(node: int) -> Path:
    return _node_dir(node) / "logs" / "system.log"


def _log_size(node: int) -> int:
    try:
        return _system_log(node).stat().st_size
    except OSError:
        return 0


def _log_since(node: int, offset: int) -> str:
    try:
        with open(_system_log(node), "rb") as handle:
            if handle.seek(0, os.SEEK_END) < offset:
                offset = 0  # log was replaced
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _wait_seen(expect: dict[int, list[int]], offsets: dict[int, int], state: str) -> None:
    """Wait until each node ``m`` in ``expect`` has logged every ``expect[m]`` as ``state``.

    ``state`` is UP or DOWN: Cassandra's Gossiper logs "InetAddress <peer> is now
    UP" once it has marked a peer alive (after the echo round trip) and "... is
    now DOWN" once the failure detector convicted it; that is the moment
    coordinators route around the peer, and the moment QUORUM starts to fail
    fast with Unavailable instead of timing out.  Only what each log gained after
    ``offsets[m]`` counts.
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


# --------------------------------------------------------------------------- start/stop


def _launch(java: str, node: int, heap: str) -> float:
    """Start ``node`` and wait until it answers CQL; return the seconds it took."""
    directory = _node_dir(node)
    if _port_open(node, timeout=0.5):
        raise CassandraError(
            f"{address(node)}:{NATIVE_PORT} is already in use by a process this script "
            "did not record; stop it first (pgrep -af CassandraDaemon)"
        )
    others = [n for n in _running_nodes() if n != node]
    offsets = {n: _log_size(n) for n in [*others, node]}
    began = time.monotonic()
    with open(directory / "stdout.log", "ab") as out:
        out.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
        out.flush()
        child = subprocess.Popen(
            _java_command(java, node, heap),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = (node, child)
    _pid_file(node).write_text(f"{child.pid}\n")
    _wait_ready(node, child.pid, began)
    # Wait until the node and the running ones have marked each other alive, so
    # that QUORUM works as soon as this returns.
    expect = {n: [node] for n in others}
    if others:
        expect[node] = others
    _wait_seen(expect, offsets, "UP")
    return time.monotonic() - began


def _wait_ready(node: int, pid: int, began: float) -> None:
    timeout = _start_timeout()
    while True:
        if not _pid_alive(pid, node):
            directory = _node_dir(node)
            raise CassandraError(
                f"node {node} exited during startup; see {directory}/logs/system.log\n"
                f"--- stdout.log ---\n{_tail(directory / 'stdout.log')}"
            )
        if _port_open(node) and _cql_ready(node):
            return
        if time.monotonic() - began > timeout:
            raise CassandraError(
                f"node {node} (pid {pid}) not ready after {timeout:.0f}s; "
                f"see {_node_dir(node)}/logs/system.log"
            )
        time.sleep(0.5)


def _running_nodes() -> list[int]:
    return [n for n in range(1, MAX_NODES + 1) if _recorded_pid(n) is not None]


def _wipe(node: int) -> None:
    directory = _node_dir(node)
    for name in ("data", "logs"):
        shutil.rmtree(directory / name, ignore_errors=True)
    for name in ("stdout.log", "pid"):
        (directory / name).unlink(missing_ok=True)


def _ensure_node_up(java: str, node: int, heap: str) -> None:
    pid = _recorded_pid(node)
    if pid is not None:
        if not _port_open(node):
            # Started by an earlier call that has not finished yet, or hung.
            _wait_ready(node, pid, time.monotonic())
        _log(f"node{node} {address(node)}:{NATIVE_PORT} running pid={pid} (already running)")
        return
    seconds = _launch(java, node, heap)
    pid = _recorded_pid(node)
    _log(f"node{node} {address(node)}:{NATIVE_PORT} running pid={pid} (started in {seconds:.1f}s)")


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
    with _locked():
        java = _find_java(install_deps)
        fetch(install_deps)
        previous = _layout_nodes()
        if fresh or (previous and previous != nodes):
            running = _running_nodes()
            if running:
                raise CassandraError(
                    f"nodes {running} of a {previous}-node cluster are running; "
                    "stop them before starting a different or fresh cluster"
                )
            _log(f"wiping data of the previous {previous or nodes}-node cluster")
            for node in range(1, MAX_NODES + 1):
                _wipe(node)
        LAYOUT_FILE.write_text(json.dumps({"nodes": nodes, "heap": heap}) + "\n")
        for node in range(1, nodes + 1):
            if _recorded_pid(node) is None:
                _write_config(node, nodes)
            _ensure_node_up(java, node, heap)
    return [address(n) for n in range(1, nodes + 1)]


def restart_node(node: int) -> None:
    """Start one stopped (or killed) node of the current cluster again, same data.

    Returns once the node answers CQL and the other running nodes see it.
    """
    _check_node(node)
    with _locked():
        nodes = _layout_nodes()
        if node > nodes:
            raise CassandraError(f"node {node} is not part of the {nodes}-node cluster")
        java = _find_java(False)
        fetch()
        if _recorded_pid(node) is None:
            _write_config(node, nodes)
        _ensure_node_up(java, node, _layout_heap())


def _signal_nodes(nodes: list[int], sig: signal.Signals, timeout: float) -> None:
    pids = {n: _recorded_pid(n) for n in nodes}
    for pid in pids.values():
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    for node, pid in pids.items():
        if pid is None:
            _log(f"node{node} {address(node)} stopped")
            continue
        if not _wait_gone(pid, node, timeout):
            _log(f"node{node} pid={pid} still running after {timeout:.0f}s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, node, 30.0):
                raise CassandraError(f"node{node} pid={pid} did not exit")
        _pid_file(node).unlink(missing_ok=True)
        verb = "killed" if sig == signal.SIGKILL else "stopped"
        _log(f"node{node} {address(node)} {verb} (pid {pid})")


def _stop_one(node: int, sig: signal.Signals, timeout: float, wait_down: bool) -> None:
    """Signal one node; with ``wait_down``, wait until the running others see it DOWN."""
    was_running = _recorded_pid(node) is not None
    others = [n for n in _running_nodes() if n != node]
    offsets = {n: _log_size(n) for n in others}
    began = time.monotonic()
    _signal_nodes([node], sig, timeout)
    if wait_down and was_running and others:
        _wait_seen({n: [node] for n in others}, offsets, "DOWN")
        _log(f"node{node} seen DOWN by nodes {others} after {time.monotonic() - began:.1f}s")


def stop(node: int | None = None) -> None:
    """Stop one node, or all, gracefully (SIGTERM; SIGKILL after a timeout).

    A node stopped alone announces its shutdown, so the others mark it DOWN at
    once; this returns after they have.
    """
    if node is not None:
        _check_node(node)
    with _locked():
        if node is not None:
            _stop_one(node, signal.SIGTERM, STOP_TIMEOUT, wait_down=True)
            return
        targets = [n for n in range(1, MAX_NODES + 1) if _node_dir(n).is_dir() or _recorded_pid(n)]
        _signal_nodes(targets, signal.SIGTERM, STOP_TIMEOUT)


def kill(node: int, wait_down: bool = True) -> None:
    """SIGKILL one node (for failure tests).

    Returns once the process is gone and, with ``wait_down`` (the default), once
    every other running node's failure detector has convicted it (typically
    10-20 s after the kill).  Until then coordinators still count it as a live
    replica: QUORUM with two of three nodes killed times out instead of failing
    with Unavailable, and range reads routed to it time out.
    """
    _check_node(node)
    with _locked():
        _stop_one(node, signal.SIGKILL, 30.0, wait_down)


def status() -> list[str]:
    """One line per configured node: running/stopped, pid, address, RSS."""
    lines = []
    count = max([_layout_nodes()] + [n for n in range(1, MAX_NODES + 1) if _node_dir(n).is_dir()])
    for node in range(1, count + 1):
        pid = _recorded_pid(node)
        where = f"{address(node)}:{NATIVE_PORT}"
        if pid is None:
            lines.append(f"node{node} stopped {where}")
        elif _port_open(node):
            lines.append(f"node{node} running pid={pid} {where} rss={_rss_mib(pid)}MiB")
        else:
            lines.append(f"node{node} starting pid={pid} {where} (CQL port not answering yet)")
    return lines or ["no nodes configured"]


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cassandra.py",
        description="Fetch Apache Cassandra "
        f"{CASSANDRA_VERSION} from Maven Central and run 1 or 3 local nodes "
        "(node N on 127.0.0.N:9042). State lives in var/cassandra/.",
        epilog="Environment: CI (set: allow installing java/maven with apt-get), "
        "CASSANDRA_START_TIMEOUT (seconds per node, default 240).",
    )
    parser.add_argument(
        "--install-deps",
        action="store_true",
        help="install openjdk-17-jre-headless and maven with apt-get if missing",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start_cmd = commands.add_parser(
        "start", help="fetch jars if missing and start the nodes (idempotent)"
    )
    start_cmd.add_argument(
        "--nodes",
        type=int,
        choices=range(1, MAX_NODES + 1),
        default=1,
        help="number of nodes (default 1)",
    )
    start_cmd.add_argument(
        "--heap", default=DEFAULT_HEAP, help=f"JVM heap per node (default {DEFAULT_HEAP})"
    )
    start_cmd.add_argument(
        "--fresh", action="store_true", help="wipe the nodes' data first (all must be stopped)"
    )
    stop_cmd = commands.add_parser(
        "stop", help="stop nodes started by this script (SIGTERM, SIGKILL after a timeout)"
    )
    stop_cmd.add_argument("--node", type=int, help="only this node (default: all)")
    kill_cmd = commands.add_parser("kill", help="SIGKILL one node (for failure tests)")
    kill_cmd.add_argument("--node", type=int, required=True, help="the node to kill")
    kill_cmd.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the process is gone, without waiting for the other nodes "
        "to mark it DOWN (which takes 10-20 s)",
    )
    commands.add_parser("status", help="one line per node: running/stopped, pid, address")
    commands.add_parser("fetch", help="only fetch the jars into var/cassandra/lib")
    for sub in commands.choices.values():
        sub.add_argument(
            "--install-deps",
            action="store_true",
            default=argparse.SUPPRESS,
            help="install openjdk-17-jre-headless and maven with apt-get if missing",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "start":
            start(args.nodes, args.heap, args.fresh, args.install_deps)
        elif args.command == "stop":
            stop(args.node)
        elif args.command == "kill":
            kill(args.node, wait_down=not args.no_wait)
        elif args.command == "status":
            for line in status():
                print(line)
        elif args.command == "fetch":
            if jars_present():
                _log(f"jars for Cassandra {CASSANDRA_VERSION} already in {LIB}")
            else:
                fetch(args.install_deps)
    except CassandraError as error:
        print(f"cassandra.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
