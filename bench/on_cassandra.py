"""Queuey on one local Cassandra node (skipped with ``BENCH_CASSANDRA=0``).

The node comes from scripts/cassandra_runner (java and mvn needed); one already
running is reused and left running. Figures are for orientation: the node
shares the machine's two cores with the server and wrk, so they are not
compared with targets.
"""

from __future__ import annotations

import shutil
import time

from bench import fill
from bench.harness import APP, KEY, SIZE, Harness, rows
from bench.servers import Fleet
from scripts import cassandra_runner


def measure(bench: Harness) -> None:
    """POST (weak, strong) and GET limit 10 on one node, then many queues."""
    if not (shutil.which("java") and shutil.which("mvn")):
        bench.report.note("Cassandra skipped: java and mvn are needed (scripts/cassandra_runner).")
        return
    already = cassandra_runner.is_up(1)
    if not already:
        cassandra_runner.start(nodes=1)
    try:
        url = f"cassandra://127.0.0.1/bench_{int(time.time())}?replication=1"
        with Fleet(bench.settings.work, bench.server_cores) as fleet:
            server = fleet.queuey("queuey-cassandra", url, APP, KEY)
            bench.report.server("Queuey (one Cassandra node)", server.shell)
            fill.create_queue(server.url, APP, KEY, "weak", "weak")
            fill.create_queue(server.url, APP, KEY, "strong", "strong")
            fill.post_messages(server.url, APP, KEY, "weak", 1000, SIZE)
            post = (f"size={SIZE}", "method=POST")
            scenarios = [
                bench.scenario("cassandra-post-weak", "Cassandra: POST one message, weak (ONE)",
                               server, bench.load(server, f"/v1/{APP}/weak", "static.lua", *post)),
                bench.scenario("cassandra-post-strong",
                               "Cassandra: POST one message, strong (QUORUM)", server,
                               bench.load(server, f"/v1/{APP}/strong", "static.lua", *post)),
                bench.scenario("cassandra-read-10", "Cassandra: GET a range, limit 10", server,
                               bench.load(server, f"/v1/{APP}/weak?limit=10", "static.lua"),
                               per_request=10),
            ]  # fmt: skip
            bench.measure(scenarios)
            bench.report.figures("One Cassandra node (orientation only)", rows(scenarios))
        from bench.cassandra_many import many_queues

        count = bench.settings.queues[-1]
        for line in many_queues(url, count):
            bench.report.note(line)
    finally:
        if not already:
            cassandra_runner.stop()
