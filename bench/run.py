"""``make bench``: measure Queuey with wrk against issue 13's targets and write BENCHMARKS.md.

The servers run pinned to one core (``taskset -c``), wrk to another, each
with one process. Every figure is the median of ``BENCH_RUNS`` runs; runs of
the scenarios that are compared with each other are interleaved (round 1 of
each, then round 2 ...) so that a slow spell of a shared machine hits them
all alike, and the targets are ratios within this one run. Every server
started here is stopped at the end, also on failure or Ctrl-C.

What is measured, in order (``BENCHMARKS.md``'s sections):

- One server (SQLite): three bare baselines on granian with ``queuey serve``'s
  own socket and options (bench/baseline_app.py): Starlette, a plain ASGI
  callable (the "bare granian handler" of the targets) and an RSGI one (for
  information); Queuey's POST (weak, strong, batches of 100), GET limit 10 and
  100, the mixed load; claim and ack of consumer groups flat out. All in the
  same interleaved rounds; then the mixed load and the claims paced at half
  their maximum rates, and 1 vs ``BENCH_GROUPS`` groups on a queue (bench/groups.py).
- Many queues in the store: POST and GET on random queues of stores of
  ``BENCH_QUEUES`` queues (filled straight into the SQLite file, bench/fill.py).
- Two workers on two cores (bench/scaling.py): POST weak and GET limit 10 on
  ``--workers 1`` and ``--workers 2``, nothing pinned, with requests per
  server-CPU-second beside requests/s (the server's and wrk's CPU from /proc),
  how wrk's connections spread over the workers, and what the SQLite writer
  threads did under the POSTs (commits from ``/__metrics__``; their time
  asleep in SQLite's busy handler, sampled from /proc).
- The peer table (``BENCH_PEERS=1``, bench/peers/).
- One Cassandra node (bench/on_cassandra.py): the web node's CPU per 10,000
  POSTs and per 10,000 messages read beside SQLite's of this run.

The targets (issue 13; issue 9's on consumer groups kept): single POST (weak)
>= 1.0x bare Starlette and >= 0.35x the bare granian ASGI handler; strong POST
>= 0.9x weak; GET limit 10 >= 1.0x bare Starlette; batch POST of 100 >= 150,000
messages/s; claim and ack in batches of 100 >= 75,000 messages/s and >= 50% of
the batch POST; claims p99 <= 10 ms and the mixed load's p99 <= 10 ms at half
their maximum rates; 10,000 groups >= 90% of one; 1,000,000 queues: POST and GET
>= 90% of 1,000 queues, p99 <= 3x p50, server RSS <= 200 MB; on one Cassandra
node, the web node's CPU per message <= 2x SQLite's. A missed target says what
bounds it (CPU accounting, and what is known of the code path) and, when
py-spy is installed (the ``bench`` extra pins it), its scenario is profiled
while its server still runs; a target that could not be measured (Cassandra
did not start, ``BENCH_CASSANDRA=0``) says why.

Settings (environment variables):

- ``BENCH_QUICK=1``: a smoke run: 1 run of 2 s, 1,000 and 10,000 queues, 1,000 groups.
- ``BENCH_RUNS`` (3), ``BENCH_SECONDS`` (8), ``BENCH_WARMUP`` (2): runs per
  figure, seconds per run, seconds of the discarded warm-up run.
- ``BENCH_QUEUES`` (``1000,1000000``): store sizes for the many-queues figures.
- ``BENCH_GROUPS`` (10000): consumer groups of one queue in the many-groups figures.
- ``BENCH_CONNECTIONS`` (64): wrk's keep-alive connections.
- ``BENCH_PROFILE`` (1 when py-spy is installed): profile each scenario whose
  target is missed, ``BENCH_PROFILE_SECONDS`` (6) long.
- ``BENCH_WAIT`` (120): seconds to wait, at most, for other processes to
  quieten down before measuring.
- ``BENCH_MAX_OTHER`` (0.3): a run during which other processes took more
  than this many cores is run again after waiting for quiet, at most
  ``BENCH_RETRIES`` (2) times, within ``BENCH_NOISE_BUDGET`` (240) seconds in all.
- ``BENCH_CASSANDRA`` (1): also measure one local Cassandra node against
  SQLite and fill it with as many queues as the largest SQLite store (needs
  java and mvn; see scripts/cassandra_runner); ``0`` skips it, saving minutes
  (its targets are then "not measured"). A node that does not start is noted,
  not fatal.
- ``BENCH_PEERS`` (0): ``1`` also measures peers beside Queuey's POST (weak,
  strong) and GET limit 10, in the same interleaved rounds: ElasticMQ (Maven
  Central, java and mvn), Centrifugo and NATS JetStream (Go module proxy, go),
  each at a pinned version, built into var/peers/ before measuring begins
  (minutes, the first time); see bench/peers/. ``python -m bench.peers
  --quick`` measures them alone.
- ``BENCH_OUTPUT`` (``BENCHMARKS.md``): where the report goes.

Run as ``python -m bench.run`` or ``python bench/run.py`` from the repository.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fill, machine, on_cassandra, scaling, wrk
from bench.groups import GroupBench
from bench.harness import APP, KEY, ROOT, SIZE, Harness, Scenario, Settings, ratio, rows
from bench.peers import measure as peer_table
from bench.servers import Fleet, Server


class Bench(Harness):
    """The measurements of one ``make bench``: the SQLite scenarios, then Cassandra's."""

    # -- the scenarios ---------------------------------------------------------

    def single_server(self, fleet: Fleet, beside: list[Scenario]) -> list[Scenario]:
        """Baseline, posts, batches, reads and the mixed load on one server.

        ``beside``: scenarios of other servers compared with these, measured in the
        same interleaved rounds (claim and ack, compared with the batch POST).
        """
        s = self.settings
        base = fleet.baseline()
        self.report.server("bare Starlette", base.shell)
        bare = fleet.baseline("asgi")
        self.report.server("bare granian ASGI handler", bare.shell)
        rsgi = fleet.baseline("rsgi")
        self.report.server("bare granian RSGI handler", rsgi.shell)
        main = fleet.queuey("queuey-main", f"sqlite:///{s.work / 'main.db'}", APP, KEY)
        self.report.server("Queuey (SQLite)", main.shell)
        for name, consistency in [
            ("weak", "weak"), ("strong", "strong"), ("batch", "weak"), ("batchstrong", "strong"),
            ("read", "weak"), ("mixed", "weak"),
        ]:  # fmt: skip
            fill.create_queue(main.url, APP, KEY, name, consistency)
        fill.post_messages(main.url, APP, KEY, "read", 1000, SIZE)
        fill.post_messages(main.url, APP, KEY, "mixed", 100, SIZE)
        self.report.note(
            "Queues of the single-server figures are created through HTTP; `read` holds 1,000"
            f" messages of {SIZE} bytes, `mixed` starts with 100."
        )
        post = (f"size={SIZE}", "method=POST")
        scenarios = [
            self.scenario("baseline", "bare Starlette: GET, constant JSON", base,
                          self.load(base, f"/v1/{APP}/read?limit=10", "static.lua")),
            self.scenario("baseline-post", f"bare Starlette: POST {SIZE} bytes, constant JSON",
                          base, self.load(base, f"/v1/{APP}/weak", "static.lua", *post)),
            self.scenario("bare-asgi", "bare granian ASGI handler: GET, constant JSON", bare,
                          self.load(bare, f"/v1/{APP}/read?limit=10", "static.lua")),
            self.scenario("bare-asgi-post",
                          f"bare granian ASGI handler: POST {SIZE} bytes, constant JSON", bare,
                          self.load(bare, f"/v1/{APP}/weak", "static.lua", *post)),
            self.scenario("bare-rsgi-post",
                          f"bare granian RSGI handler: POST {SIZE} bytes, constant JSON"
                          " (information)", rsgi,
                          self.load(rsgi, f"/v1/{APP}/weak", "static.lua", *post)),
            self.scenario("post-weak", f"POST one {SIZE}-byte message, weak queue", main,
                          self.load(main, f"/v1/{APP}/weak", "static.lua", *post)),
            self.scenario("post-strong", f"POST one {SIZE}-byte message, strong queue", main,
                          self.load(main, f"/v1/{APP}/strong", "static.lua", *post)),
            self.scenario("batch-weak", f"POST a batch of 100 {SIZE}-byte messages, weak queue",
                          main, self.load(main, f"/v1/{APP}/batch", "static.lua", *post,
                                          "batch=100"), per_request=100),
            self.scenario("batch-strong",
                          f"POST a batch of 100 {SIZE}-byte messages, strong queue", main,
                          self.load(main, f"/v1/{APP}/batchstrong", "static.lua", *post,
                                    "batch=100"), per_request=100),
            self.scenario("read-10", "GET a range, limit 10", main,
                          self.load(main, f"/v1/{APP}/read?limit=10", "static.lua"),
                          per_request=10),
            self.scenario("read-100", "GET a range, limit 100", main,
                          self.load(main, f"/v1/{APP}/read?limit=100", "static.lua"),
                          per_request=100),
            self.scenario("mixed-max", "mixed: POST and GET limit 10 alternately, flat out",
                          main, self.load(main, "/", "dynamic.lua", "mode=mixed",
                                          f"path=/v1/{APP}/mixed", "limit=10", f"size={SIZE}")),
        ]  # fmt: skip
        self.measure([*scenarios, *beside])
        rate = scenarios[-1].rps / 2
        half = self.scenario(
            "mixed-half",
            f"mixed: POST and GET limit 10 alternately, paced at {rate:,.0f} req/s",
            main,
            self.load(main, "/", "paced.lua", "mode=mixed", f"path=/v1/{APP}/mixed",
                      "limit=10", f"size={SIZE}", f"rate={rate:.0f}"),
        )  # fmt: skip
        self.measure([half])
        late = sum(r.extra.get("late_sends", 0) for r in half.runs)
        sent = sum(r.extra.get("paced_sends", 0) for r in half.runs)
        worst = max((r.extra.get("late_ms_max", 0) for r in half.runs), default=0)
        self.report.note(
            f"Paced mixed load: wrk has no fixed-rate mode and wrk2 is not in Debian, so"
            f" bench/lua/paced.lua schedules one send every 1/{rate:,.0f} s with wrk's delay()."
            f" {late:,.0f} of {sent:,.0f} sends left more than 1 ms after their slot"
            f" (worst {worst:.1f} ms); latency is timed from the send, so time spent behind"
            " schedule (coordinated omission) would not show in p99."
        )
        for label, server in (("bare Starlette", base), ("bare granian ASGI handler", bare),
                              ("bare granian RSGI handler", rsgi)):  # fmt: skip
            self.report.memory(f"{label}, after its runs", server.rss_mb(), server.peak_rss_mb())
        self.report.memory("Queuey, single-server figures", main.rss_mb(), main.peak_rss_mb())
        return [*scenarios, half]

    def single_targets(self) -> None:
        """Issue 13's targets of one server: each a ratio to a baseline of the same rounds."""
        g = self.scenarios
        weak, strong, read, half = g["post-weak"], g["post-strong"], g["read-10"], g["mixed-half"]
        starlette, starlette_get = g["baseline-post"], g["baseline"]
        bare, rsgi, batch = g["bare-asgi-post"], g["bare-rsgi-post"], g["batch-weak"]
        share = ratio(weak.rps, starlette.rps)
        self.target("single POST (weak) vs bare Starlette (POST)", ">= 1.0x",
                    f"{share:.2f}x ({weak.rps:,.0f} vs {starlette.rps:,.0f} req/s)",
                    share >= 1.0, weak)  # fmt: skip
        share = ratio(weak.rps, bare.rps)
        self.target("single POST (weak) vs a bare granian handler (ASGI, POST)", ">= 0.35x",
                    f"{share:.2f}x ({weak.rps:,.0f} vs {bare.rps:,.0f} req/s; for information,"
                    f" the RSGI handler: {rsgi.rps:,.0f} req/s, {ratio(weak.rps, rsgi.rps):.2f}x)",
                    share >= 0.35, weak)  # fmt: skip
        share = ratio(strong.rps, weak.rps)
        self.target("strong POST vs weak POST", ">= 0.9x",
                    f"{share:.2f}x ({strong.rps:,.0f} vs {weak.rps:,.0f} req/s)", share >= 0.9,
                    strong)  # fmt: skip
        share = ratio(read.rps, starlette_get.rps)
        self.target("GET range limit 10 vs bare Starlette (GET)", ">= 1.0x",
                    f"{share:.2f}x ({read.rps:,.0f} vs {starlette_get.rps:,.0f} req/s)",
                    share >= 1.0, read)  # fmt: skip
        self.target("batch POST (100 per request, weak)", ">= 150,000 msg/s",
                    f"{batch.messages:,.0f} msg/s", batch.messages >= 150_000,
                    batch)  # fmt: skip
        self.target("mixed load at half the maximum rate: p99", "<= 10 ms",
                    f"{half.p99:.2f} ms (p50 {half.p50:.2f} ms at {half.rps:,.0f} req/s)",
                    half.p99 <= 10, half, latency=True)  # fmt: skip

    def consumer_groups(self, groups: GroupBench, flat_out: Scenario) -> None:
        """Claim and ack paced, many groups on one queue, and what groups hold."""
        half, many = groups.paced(flat_out), groups.many()
        self.measure([half, *many])
        late = sum(r.extra.get("late_sends", 0) for r in half.runs)
        self.report.note(
            f"Paced claims and acks: bench/lua/group.lua schedules its sends as paced.lua does;"
            f" {late:,.0f} of {half.total('paced_sends'):,.0f} sends left more than 1 ms after"
            " their slot."
        )
        posted = sum(b.posted for b in groups.backlogs.values())
        if posted:
            self.report.note(f"Consumer groups: {posted:,} messages posted between runs.")
        measured = [flat_out, half, *many]
        for one in measured:
            dry, lost = one.total("empty_claims"), one.total("lost")
            if dry or lost:
                self.report.note(
                    f"{one.title}: {dry:,.0f} claims found the group empty, {lost:,.0f}"
                    " acknowledgements were answered LeaseLost."
                )
        self.report.groups(rows(measured, by_messages=True), groups.states())
        self.group_targets(flat_out, half, groups.window_bytes)

    def group_targets(self, flat_out: Scenario, half: Scenario, window_bytes: int) -> None:
        """Claim and ack vs batch POST, claims' p99 when paced, many groups vs one."""
        g = self.scenarios
        batch, count = g["batch-weak"], self.settings.groups
        self.target("claim and ack in batches of 100 (1 group, 4 partitions)",
                    ">= 75,000 msg/s", f"{flat_out.messages:,.0f} msg/s",
                    flat_out.messages >= 75_000, flat_out)  # fmt: skip
        share = ratio(flat_out.messages, batch.messages)
        self.target("claim and ack (100 a claim, 1 group, 4 partitions) vs batch POST",
                    ">= 50%",
                    f"{share:.0%} ({flat_out.messages:,.0f} vs {batch.messages:,.0f} msg/s)",
                    share >= 0.5, flat_out,
                    why="every claim and every ack changes its group partition's window in"
                    " the one SQLite writer thread, in Python: a record per lease in flight"
                    " (up to 100 for each of wrk's connections) and the receipts remembered"
                    f" for retried acks, {window_bytes / 4 / 1000:,.0f} kB a partition after"
                    " the runs (see Consumer groups), written once per transaction; each"
                    " message's receipt is signed and checked, and the queue and group rows"
                    " are read for every request (docs/performance.md)")  # fmt: skip
        self.target("claims at half the maximum claim-and-ack rate: p99", "<= 10 ms",
                    f"{half.p99:.2f} ms (p50 {half.p50:.2f} ms at {half.rps:,.0f} req/s)",
                    half.p99 <= 10, half, latency=True)  # fmt: skip
        for kind, verb in (("post", "POST"), ("claim", "claim and ack")):
            one, many = g[f"group-{kind}-1"], g[f"group-{kind}-many"]
            unit = "req/s" if kind == "post" else "msg/s"
            few_rate = one.rps if kind == "post" else one.messages
            many_rate = many.rps if kind == "post" else many.messages
            share = ratio(many_rate, few_rate)
            self.target(f"{count:,} groups on one queue: {verb} vs 1 group", ">= 90%",
                        f"{share:.0%} ({many_rate:,.0f} vs {few_rate:,.0f} {unit})",
                        share >= 0.9, many)  # fmt: skip

    def many_queues(self, fleet: Fleet) -> list[Scenario]:
        """POST and GET to random queues of stores with ``queues`` queues each."""
        s = self.settings
        servers: dict[int, Server] = {}
        for count in s.queues:
            db = s.work / f"queues-{count}.db"
            self.log(f"filling {db.name} with {count:,} queues")
            took = fill.fill_queues(db, APP, count, "weak", 1, SIZE)
            self.report.note(
                f"{count:,} weak queues, one {SIZE}-byte message each, written straight into"
                f" the SQLite file ({db.stat().st_size / 1e6:,.1f} MB) in {took:.1f} s"
                " (bench/fill.py) before the server started."
            )
            servers[count] = fleet.queuey(f"queuey-{count}", f"sqlite:///{db}", APP, KEY)
            self.report.server(f"Queuey, {count:,} queues", servers[count].shell)
        reads, posts = [], []
        for count, server in servers.items():
            path = f"path=/v1/{APP}/{fill.QUEUE_NAME}"
            reads.append(self.scenario(
                f"read-{count}", f"GET limit 10 from a random one of {count:,} queues", server,
                self.load(server, "/", "dynamic.lua", "mode=read", path, f"queues={count}",
                          "limit=10")))  # fmt: skip
            posts.append(self.scenario(
                f"post-{count}", f"POST one {SIZE}-byte message to a random one of {count:,}"
                " queues", server,
                self.load(server, "/", "dynamic.lua", "mode=post", path, f"queues={count}",
                          f"size={SIZE}")))  # fmt: skip
        # Reads first: posts would give the smaller store more messages per queue.
        self.measure(reads)
        self.measure(posts)
        for count, server in servers.items():
            self.report.memory(f"Queuey, {count:,} queues", server.rss_mb(), server.peak_rss_mb())
        return reads + posts

    def many_targets(self, fleet: Fleet) -> None:
        counts = self.settings.queues
        if len(counts) < 2:
            return
        small, big = counts[0], counts[-1]
        label = f"{big:,} queues"
        for kind in ("post", "read"):
            few, many = self.scenarios[f"{kind}-{small}"], self.scenarios[f"{kind}-{big}"]
            verb = "POST" if kind == "post" else "GET"
            share = ratio(many.rps, few.rps)
            self.target(f"{label}: {verb} throughput vs {small:,} queues", ">= 90%",
                        f"{share:.0%} ({many.rps:,.0f} vs {few.rps:,.0f} req/s)",
                        share >= 0.9, many)  # fmt: skip
            spread = many.p99 / max(many.p50, 1e-9)
            self.target(f"{label}: {verb} p99 vs p50", "<= 3x",
                        f"{spread:.1f}x (p50 {many.p50:.2f} ms, p99 {many.p99:.2f} ms)",
                        spread <= 3, many)  # fmt: skip
        server = next(s for s in fleet.servers if s.name == f"queuey-{big}")
        rss = server.rss_mb()
        parts = ", ".join(f"PID {pid} {mb:,.0f} MB" for pid, mb in server.rss_by_process())
        self.target(f"{label}: server resident memory (VmRSS, all processes)", "<= 200 MB",
                    f"{rss:,.0f} MB (peak {server.peak_rss_mb():,.0f} MB)", rss <= 200,
                    None, why=f"memory, not CPU, so no CPU profile: by process, {parts}"
                    )  # fmt: skip

    # -- the whole run ---------------------------------------------------------

    def run(self) -> None:
        s = self.settings
        wrk.ensure_wrk()
        shutil.rmtree(s.work, ignore_errors=True)
        s.work.mkdir(parents=True)
        self.report.settings(
            runs=s.runs, seconds=s.seconds, warmup=s.warmup, connections=s.connections,
            server_cores=self.server_cores, loadgen_cores=self.loadgen_cores,
        )  # fmt: skip
        # Built before waiting for quiet: a build takes minutes of CPU.
        peers = peer_table.build(peer_table.PEERS, self) if peer_table.enabled() else []
        if s.wait > 0:
            self.log(f"waiting up to {s.wait:g} s for other processes to quieten down")
        waited, load = machine.wait_for_quiet(s.wait)
        self.report.background(waited, load)
        self.fsync_ms = machine.fsync_ms(s.work)
        self.report.fsync(self.fsync_ms)
        began = time.monotonic()
        with Fleet(s.work, self.server_cores) as fleet:
            groups = GroupBench(self, fleet)
            claim_ack = groups.claim_ack()
            self.report.figures("One server", rows(self.single_server(fleet, [claim_ack])))
            self.single_targets()
            self.consumer_groups(groups, claim_ack)
            self.profiles()
        with Fleet(s.work, self.server_cores) as fleet:
            self.report.figures("Many queues in the store", rows(self.many_queues(fleet)))
            self.many_targets(fleet)
            self.profiles()
        scaling.measure(self)
        if peers:
            peer_table.measure(self, peers)
        if s.cassandra:
            on_cassandra.measure(self)
        else:
            on_cassandra.not_measured(self, "skipped with BENCH_CASSANDRA=0")
        if self.rerun:
            self.report.note(
                f"{self.rerun} run(s) were run again because other processes took more than"
                f" {s.max_other:g} cores meanwhile ({self.noise_spent:.0f} s spent on that);"
                " a figure whose `other cores` is still above that had no quiet spell in time."
            )
        self.report.elapsed(time.monotonic() - began, machine.background_cores(1.0))


def _stop_on_signal(number: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + number)


def main() -> int:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every `with Fleet` stops its servers.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    settings = Settings.from_environment()
    bench = Bench(settings)
    bench.run()
    text = bench.report.render(machine.describe(), machine.versions())
    settings.output.write_text(text, encoding="utf-8")
    print(text)
    print(f"Wrote {settings.output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
