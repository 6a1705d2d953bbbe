"""Consumer groups in ``make bench`` (SPEC §6): claim and ack, many groups, what a group costs.

The group figures have their own server and SQLite file, whose queues (weak,
4 partitions each) are filled straight into the file before it starts, as
bench/fill.py fills the many-queues stores:

- ``work``: group ``g`` (at_least_once), claimed and acknowledged flat out
  (measured beside the batch POST, interleaved with it), then paced at half
  that rate; group ``idle``, through which 1,000 messages are claimed and
  acknowledged in batches of 100 before its state is read;
- ``single``: one group, and ``crowd``: ``BENCH_GROUPS`` groups created
  through HTTP; POST and claim-and-ack on one group of each, interleaved.

bench/lua/group.lua drives the claims: each answer's receipts are acknowledged
by the next request. Before each run the group is given enough messages for
it (:meth:`Backlog.prepare`, untimed), so claims never find it empty.
After the runs the state is read from the file with sqlite3: rows in
``groups`` and ``group_windows``, the windows' bytes, and how the file grew
with the groups.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import APP, KEY, SIZE, Harness, Scenario
from bench.report import GroupState
from bench.servers import Fleet
from queuey.storage import window as w
from queuey.storage.keys import new_tail, now_ticks
from queuey.storage.sqlite.schema import migrate

PARTITIONS = 4
LIMIT = 100
GUARANTEE = "at_least_once"
#: Shorter than the default 30 s: a run ends with the last claims unacknowledged, and
#: until their leases end the group's start cannot move past them (the next run waits).
LEASE_SECONDS = 5
#: Messages per second a group is assumed to take before a run has measured it.
GUESS = 60_000
#: Messages given for each expected one: a run faster than the last ones still finds enough.
HEADROOM = 1.5
SETTINGS = {"guarantee": GUARANTEE, "lease_seconds": LEASE_SECONDS}
THREE_DAYS_MS = 3 * 86400 * 1000


def fill(db: Path, app: str, queues: dict[str, int], size: int) -> float:
    """A new SQLite file with ``queues`` (weak, 4 partitions), each with its count of messages.

    Messages go round the partitions, keys stamped above one clock as
    ``queuey serve`` would, the clock row moved past them. Returns the seconds it took.
    """
    began = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        conn.execute("PRAGMA synchronous = OFF")  # a crash here only loses the fill
        tail, ts = new_tail(), now_ticks()
        expires = int(time.time() * 1000) + THREE_DAYS_MS
        body = "x" * size
        conn.execute("BEGIN")
        for qid, (name, count) in enumerate(queues.items(), start=1):
            conn.execute(
                "INSERT INTO queues (id, app, name, partitions, type, consistency, principles,"
                " created) VALUES (?, ?, ?, ?, 'user', 'weak', '', ?)",
                (qid, app, name, PARTITIONS, round(time.time(), 3)),
            )
            conn.executemany(
                "INSERT INTO messages (qid, partition, ts, tail, expires, content_type, body)"
                " VALUES (?, ?, ?, ?, ?, 'text/plain', ?)",
                ((qid, i % PARTITIONS + 1, ts + i, tail, expires, body) for i in range(count)),
            )
            ts += count
        conn.execute("UPDATE clock SET last_ts = ? WHERE id = 0", (ts,))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - began


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Application {KEY}"}, timeout=60)


def create_group(url: str, queue: str, group: str) -> None:
    with _client(url) as http:
        response = http.put(f"/v1/{APP}/{queue}/groups/{group}", json=SETTINGS)
        response.raise_for_status()


def create_groups(url: str, queue: str, names: list[str], concurrency: int = 4) -> float:
    """Create groups through HTTP, ``concurrency`` requests at a time; the seconds it took.

    4 at a time was the fastest when this was written: 1.8 times 1 at a time, twice 16.
    """

    async def create() -> None:
        todo = iter(names)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Application {KEY}"}, timeout=60
        ) as http:

            async def worker() -> None:
                for name in todo:
                    response = await http.put(f"/v1/{APP}/{queue}/groups/{name}", json=SETTINGS)
                    response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    began = time.perf_counter()
    asyncio.run(create())
    return time.perf_counter() - began


def consume(url: str, queue: str, group: str, messages: int) -> None:
    """Claim ``messages`` in batches of 100 and acknowledge each batch, one after another."""
    with _client(url) as http:
        path = f"/v1/{APP}/{queue}/groups/{group}"
        for _ in range(messages // LIMIT):
            claimed = http.post(f"{path}/claim", json={"limit": LIMIT})
            claimed.raise_for_status()
            receipts = [m["receipt"] for m in claimed.json()["messages"]]
            http.post(f"{path}/ack", json={"receipts": receipts}).raise_for_status()


@dataclass
class Backlog:
    """Keeps a group supplied: before each run, enough available messages for it."""

    url: str
    queue: str
    group: str
    guess: float = GUESS
    """Messages per second expected before the scenario has a run."""
    posted: int = 0
    """Messages posted to the group's queue by :meth:`prepare`."""

    def counts(self) -> tuple[int, int]:
        """The group's messages available now (pending, not leased), and those leased."""
        with _client(self.url) as http:
            response = http.get(f"/v1/{APP}/{self.queue}/groups/{self.group}")
            response.raise_for_status()
            parts = response.json()["partitions"]
        leased = sum(int(p["in_flight"]) for p in parts)
        return sum(int(p["pending"]) for p in parts) - leased, leased

    def prepare(self, scenario: Scenario, seconds: float) -> None:
        """Wait for the leases a run cut off to end, then post what the next run needs."""
        deadline = time.monotonic() + LEASE_SECONDS + 1
        available, leased = self.counts()
        while leased and time.monotonic() < deadline:
            time.sleep(0.5)
            available, leased = self.counts()
        rate = max(
            (r.extra.get("claimed", 0.0) / r.seconds for r in scenario.runs if r.seconds),
            default=self.guess,
        )
        if scenario.runs and scenario.runs[-1].extra.get("empty_claims", 0):
            # The last run found the group empty: it claimed less than it could have, and
            # giving the next one as much again would starve it again (and halve the rate).
            rate *= 2
        needed = int(rate * seconds * HEADROOM) + LIMIT * scenario.load.connections
        missing = needed - available
        if missing <= 0:
            return
        items = [{"body": "x" * SIZE}] * 1000
        with _client(self.url) as http:
            for _ in range(0, missing, 1000):
                response = http.post(f"/v1/{APP}/{self.queue}", json={"messages": items})
                response.raise_for_status()
                self.posted += 1000


def _logical_bytes(conn: sqlite3.Connection) -> int:
    """The database's size as of now, what is still in the WAL included."""
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    return int(pages) * int(size)


def file_bytes(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return _logical_bytes(conn)
    finally:
        conn.close()


def state(
    db: Path, label: str, queue: str, names: list[str], grew: int | None, app: str = APP
) -> GroupState:
    """Rows and bytes of some groups of ``queue``, read from the file with sqlite3."""
    wanted = set(names)
    conn = sqlite3.connect(db)
    try:
        (qid,) = conn.execute(
            "SELECT id FROM queues WHERE app = ? AND name = ?", (app, queue)
        ).fetchone()
        gids = [
            gid
            for (gid, name) in conn.execute("SELECT id, name FROM groups WHERE qid = ?", (qid,))
            if name in wanted
        ]
        windows = [
            bytes(blob)
            for gid in gids
            for (blob,) in conn.execute("SELECT window FROM group_windows WHERE gid = ?", (gid,))
        ]
    finally:
        conn.close()
    loaded = [w.load(blob) for blob in windows]
    return GroupState(
        label=label,
        groups=len(gids),
        windows=len(windows),
        window_bytes=sum(len(b) for b in windows),
        records=sum(len(x.records) for x in loaded),
        recent=sum(len(x.recent) // w.REMEMBERED.size for x in loaded),
        file_bytes=grew,
    )


class GroupBench:
    """The consumer-group scenarios of one ``make bench``, on their own server."""

    def __init__(self, bench: Harness, fleet: Fleet) -> None:
        s = bench.settings
        self.bench = bench
        self.db = s.work / "groups.db"
        self.count = s.groups
        # Enough for a warm-up and a run at GUESS messages/s on ``work``; a third on the
        # others, claimed once the flat-out rate is known. Backlog.prepare adds what is missing.
        work = int(GUESS * (s.warmup + s.seconds) * HEADROOM)
        counts = {"work": work, "single": work // 3, "crowd": work // 3}
        bench.log(f"filling {self.db.name}: {counts}")
        took = fill(self.db, APP, counts, SIZE)
        listed = ", ".join(f"`{name}` {count:,}" for name, count in counts.items())
        bench.report.note(
            f"Consumer groups: queues {listed} messages of {SIZE} bytes (weak, {PARTITIONS}"
            f" partitions) written straight into the SQLite file in {took:.1f} s before the"
            f" server started. Groups are {GUARANTEE} with `lease_seconds` {LEASE_SECONDS}: a"
            " run ends with its last claims unacknowledged, and until their leases end the"
            " group's start cannot move past them, so before each run that claims the bench"
            " waits for them to end, then posts more messages when the group has fewer than"
            f" {HEADROOM:g} times what its fastest run so far claimed (both untimed)."
        )
        self.server = fleet.queuey("queuey-groups", f"sqlite:///{self.db}", APP, KEY)
        bench.report.server("Queuey, consumer groups", self.server.shell)
        for queue in ("work", "single"):
            create_group(self.server.url, queue, "g")
        self.backlogs = {q: Backlog(self.server.url, q, "g") for q in ("work", "single")}
        self.created_seconds = 0.0
        self.flat_out_rate = float(GUESS)
        self.crowd: list[GroupState] = []
        self.window_bytes = 0  # of the group measured flat out, read by states()

    def claiming(self, key: str, title: str, queue: str, group: str, *args: str) -> Scenario:
        server = self.server
        path = f"path=/v1/{APP}/{queue}/groups/{group}"
        load = self.bench.load(server, "/", "group.lua", path, f"limit={LIMIT}", *args)
        backlog = self.backlogs.setdefault(queue, Backlog(server.url, queue, group))
        made = Scenario(
            key, title, server, load, counter="acked", latency="claim_ms", prepare=backlog.prepare
        )
        return self.bench.add(made)

    def claim_ack(self) -> Scenario:
        """Claim 100 and ack them, flat out: measured with the single-server figures."""
        return self.claiming(
            "group-claim",
            f"claim {LIMIT} and ack them, one {GUARANTEE} group, weak queue of {PARTITIONS}"
            " partitions",
            "work",
            "g",
        )

    def paced(self, flat_out: Scenario) -> Scenario:
        """Claim and ack at half the flat-out request rate, for the claims' latency.

        The flat-out rate counts a claim and an ack for every ``LIMIT`` messages acknowledged:
        claims that found the group empty (quick answers) would raise it.
        """
        rate = 2 * flat_out.messages / LIMIT / 2
        half = self.claiming(
            "group-half",
            f"claim {LIMIT} and ack them, paced at {rate:,.0f} requests/s (half the maximum)",
            "work",
            "g",
            f"rate={rate:.0f}",
        )
        self.flat_out_rate = flat_out.messages
        self.backlogs["work"].guess = flat_out.messages / 2
        return half

    def many(self) -> list[Scenario]:
        """POST, and claim and ack, on a queue with 1 group and on one with ``count`` groups."""
        bench, url = self.bench, self.server.url
        before = file_bytes(self.db)
        names = [f"g{i:05d}" for i in range(self.count)]
        bench.log(f"creating {self.count:,} groups on queue crowd")
        self.created_seconds = create_groups(url, "crowd", names)
        grew = file_bytes(self.db) - before
        self.crowd = [
            state(self.db, f"{self.count:,} groups on one queue, created through HTTP in"
                  f" {self.created_seconds:.1f} s, never claimed", "crowd", names, grew)
        ]  # fmt: skip
        self.backlogs["crowd"] = Backlog(url, "crowd", names[0])
        for queue in ("single", "crowd"):
            self.backlogs[queue].guess = max(self.flat_out_rate, 1.0)
        post = (f"size={SIZE}", "method=POST")
        label = f"{self.count:,} groups"
        scenarios = [
            bench.scenario("group-post-1", f"POST one {SIZE}-byte message, queue with 1 group",
                           self.server, bench.load(self.server, f"/v1/{APP}/single",
                                                   "static.lua", *post)),
            bench.scenario("group-post-many",
                           f"POST one {SIZE}-byte message, queue with {label}", self.server,
                           bench.load(self.server, f"/v1/{APP}/crowd", "static.lua", *post)),
            self.claiming("group-claim-1", f"claim {LIMIT} and ack them, queue with 1 group",
                          "single", "g"),
            self.claiming("group-claim-many",
                          f"claim {LIMIT} and ack them on one of a queue's {label}", "crowd",
                          names[0]),
        ]  # fmt: skip
        return scenarios

    def states(self) -> list[GroupState]:
        """What groups hold, read from the file: one made idle by claims, the measured one."""
        url, consumed = self.server.url, 10 * LIMIT
        create_group(url, "work", "idle")
        consume(url, "work", "idle", consumed)
        measured = state(self.db, "1 group, after the flat-out and paced runs (with the"
                         " leases of the claims cut off at the end of the last run)", "work",
                         ["g"], None)  # fmt: skip
        self.window_bytes = measured.window_bytes
        return [
            state(self.db, f"1 group, idle after {consumed:,} messages claimed and acknowledged"
                  f" in batches of {LIMIT}", "work", ["idle"], None),
            measured,
            *self.crowd,
        ]  # fmt: skip
