"""The peer table: Queuey's POST (weak, strong) and read of 10 beside the peers'.

Every peer is built first (a peer that cannot be is left out, with the
reason in the report's notes), then Queuey and every peer's servers run
together, each pinned to the server core and idle while another is
measured, and all figures are measured in the same interleaved rounds, so
that the ratios hold within the one run. The servers stop when the
measuring ends, however it ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection

import httpx

from bench import fill, report, wrk
from bench.harness import APP, KEY, SIZE, Harness, rows
from bench.peers.build import BuildError, toolchains
from bench.peers.centrifugo import Centrifugo
from bench.peers.elasticmq import ElasticMQ
from bench.peers.jetstream import JetStream
from bench.peers.peer import QUEUEY_POST_STRONG, QUEUEY_POST_WEAK, QUEUEY_READ, Entry, Peer
from bench.servers import Fleet

PEERS: tuple[Peer, ...] = (ElasticMQ(), Centrifugo(), JetStream())
LEFT_OUT = (
    "ntfy is not among the peers: the Go module proxy refuses heckel.io/ntfy/v2 (403), and"
    " nothing else that this machine reaches serves it."
)
QUEUEY = "Queuey (SQLite)"
WEAK = "committed to SQLite's WAL before the 201, not fsynced (`weak` queue)"
STRONG = "committed and fsynced before the 201 (`strong` queue, group commit)"
STARTING = (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError)
"""What a peer that fails to start or to take its data raises."""


def enabled() -> bool:
    """Whether ``BENCH_PEERS`` asks for the peers."""
    return os.environ.get("BENCH_PEERS", "") not in ("", "0")


def queuey(bench: Harness, fleet: Fleet) -> list[Entry]:
    """Queuey's server for the table, its queues, and its three figures."""
    server = fleet.queuey("queuey-peers", f"sqlite:///{bench.settings.work / 'peers.db'}", APP, KEY)
    bench.report.server("Queuey (SQLite), beside the peers", server.shell)
    for name, consistency in (("weak", "weak"), ("strong", "strong"), ("read", "weak")):
        fill.create_queue(server.url, APP, KEY, name, consistency)
    fill.post_messages(server.url, APP, KEY, "read", 1000, SIZE)
    post = (f"size={SIZE}", "method=POST")
    return [
        Entry(bench.scenario(QUEUEY_POST_WEAK, f"Queuey: POST one {SIZE}-byte message, weak",
                             server, bench.load(server, f"/v1/{APP}/weak", "static.lua", *post)),
              QUEUEY, "POST one message", WEAK, None),
        Entry(bench.scenario(QUEUEY_POST_STRONG, f"Queuey: POST one {SIZE}-byte message, strong",
                             server, bench.load(server, f"/v1/{APP}/strong", "static.lua", *post)),
              QUEUEY, "POST one message", STRONG, None),
        Entry(bench.scenario(QUEUEY_READ, "Queuey: GET a range, limit 10", server,
                             bench.load(server, f"/v1/{APP}/read?limit=10", "static.lua"),
                             per_request=10),
              QUEUEY, "GET a range, limit 10", "reads a `weak` queue of 1,000 messages", None),
    ]  # fmt: skip


def build(peers: Collection[Peer], bench: Harness) -> list[Peer]:
    """The peers that could be built; the others are noted in the report.

    Run it before measuring anything: a build takes minutes of CPU.
    """
    built = []
    for peer in peers:
        try:
            peer.build()
        except BuildError as exc:
            bench.log(f"{peer.name} left out: {exc}")
            bench.report.note(f"{peer.name} was left out of the peer table: {exc}")
        else:
            bench.log(f"{peer.name} {peer.version} is built")
            built.append(peer)
    return built


def chosen(only: Collection[str] = ()) -> list[Peer]:
    """Every peer, or those whose key is in ``only``."""
    return [p for p in PEERS if not only or p.key in only]


def measure(bench: Harness, peers: Collection[Peer]) -> None:
    """Measure Queuey and the built ``peers`` in the same rounds; the peer table."""
    with Fleet(bench.settings.work, bench.server_cores) as fleet:
        entries = queuey(bench, fleet)
        for peer in peers:
            bench.log(f"starting {peer.name} {peer.version}")
            before = len(fleet.servers)
            try:
                entries += peer.start(bench, fleet)
            except STARTING as exc:  # the others are still worth measuring
                bench.log(f"{peer.name} failed to start: {exc}")
                bench.report.note(f"{peer.name} was left out of the peer table: {exc}")
                for server in fleet.servers[before:]:  # not left idling beside the others
                    server.stop()
                del fleet.servers[before:]
        try:
            for entry in entries:
                if entry.warmup > 0:
                    bench.log(f"JIT warm-up {entry.warmup:g} s: {entry.scenario.title}")
                    wrk.run(entry.scenario.load, entry.warmup, [])
            bench.measure([e.scenario for e in entries])
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            # The table is optional: the rest of BENCHMARKS.md is still written.
            bench.log(f"the peer table failed: {exc}")
            bench.report.note(f"The peer table failed while measuring: {str(exc)[:2000]}")
            return
        bench.report.peers(table(entries), intro(bench), [*toolchains(), LEFT_OUT])
        for server in fleet.servers:
            bench.report.memory(f"{server.name}, peer table", server.rss_mb(), server.peak_rss_mb())


def intro(bench: Harness) -> str:
    """How the peer table was measured, and how to read its ratio."""
    return (
        "`BENCH_PEERS=1`: systems a user might pick instead, each measured like Queuey:"
        " its server on the server core, its load generator on wrk's,"
        f" {bench.settings.connections} connections with one request in flight each,"
        f" {SIZE}-byte messages, in the same interleaved rounds as Queuey's figures of this"
        " table (Queuey's server is started again for them; the others idle meanwhile)."
        " Each request is the peer's closest equivalent of Queuey's; `durability` says what"
        " an answered write survives. `Queuey ÷ it`: Queuey's figure for the closest request"
        " and durability divided by the peer's, in messages/s within this run (above 1:"
        " Queuey is faster)."
    )


def table(entries: list[Entry]) -> list[report.PeerRow]:
    """The table's rows: each figure, and Queuey's closest figure divided by it."""
    by_key = {e.scenario.key: e.scenario for e in entries}
    out = []
    for entry, row in zip(entries, rows([e.scenario for e in entries]), strict=True):
        versus = None
        if entry.versus is not None and entry.versus in by_key and entry.scenario.messages:
            versus = by_key[entry.versus].messages / entry.scenario.messages
        out.append(report.PeerRow(entry.system, entry.request, entry.durability, row, versus))
    return out
