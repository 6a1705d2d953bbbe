"""Each node's configuration: cassandra.yaml (tokens, seeds, addresses) and logback.xml.

Written into ``var/cassandra/nodeN/`` before the node starts (never while it
runs).  The settings favour a fast start and a small footprint on a 2-core
machine over durability: one token per node, periodic commit log sync, no
snapshots.
"""

from __future__ import annotations

from scripts.cassandra_runner.state import NATIVE_PORT, STORAGE_PORT, address, node_dir

CLUSTER_NAME = "queuey"


def initial_token(node: int, nodes: int) -> int:
    """Node ``node``'s one token: the Murmur3 ring split evenly among ``nodes``."""
    return (node - 1) * (2**64 // nodes) - 2**63


def cassandra_yaml(node: int, nodes: int) -> str:
    ip = address(node)
    seeds = ",".join(f"{address(n)}:{STORAGE_PORT}" for n in range(1, nodes + 1))
    return f"""\
# Written by scripts/cassandra_runner; rewritten on every start.
cluster_name: {CLUSTER_NAME}
num_tokens: 1
initial_token: {initial_token(node, nodes)}
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


# Everything to logs/system.log; warnings and errors also to stdout.log.
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


def write_config(node: int, nodes: int) -> None:
    """Write node ``node``'s files for a cluster of ``nodes``, and its empty directories."""
    directory = node_dir(node)
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "triggers").mkdir(parents=True, exist_ok=True)
    (directory / "cassandra.yaml").write_text(cassandra_yaml(node, nodes))
    (directory / "logback.xml").write_text(LOGBACK.format(logs=directory / "logs"))
