"""The command line: ``python -m scripts.cassandra_runner start|stop|kill|status|fetch``."""

from __future__ import annotations

import argparse
import sys

from scripts.cassandra_runner.cluster import kill, start, status, stop
from scripts.cassandra_runner.fetch import CASSANDRA_VERSION, fetch, jars_present
from scripts.cassandra_runner.state import DEFAULT_HEAP, LIB, MAX_NODES, CassandraError, log

PROG = "python -m scripts.cassandra_runner"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
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
        "stop", help="stop nodes started by this runner (SIGTERM, SIGKILL after a timeout)"
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
    """Command-line entry point; returns the exit status."""
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
                log(f"jars for Cassandra {CASSANDRA_VERSION} already in {LIB}")
            else:
                fetch(args.install_deps)
    except CassandraError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    return 0
