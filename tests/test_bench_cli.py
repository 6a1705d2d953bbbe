"""`queuey bench` against a real `queuey serve` process, plus its small parts.

Also the pieces of `make bench`'s consumer-group figures: bench/lua/group.lua
under wrk against a real server, the state read from the file, the report.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bench import inprocess, machine, on_cassandra, scaling, wrk
from bench.groups import state
from bench.harness import Scenario, Settings
from bench.machine import CpuShare
from bench.report import GroupState, Report, Row
from bench.run import Bench
from bench.servers import Server as BenchServer
from queuey.api.metrics import MULTIPROC_ENV
from queuey.bench import Progress, message_body, percentile
from queuey.cli import main
from tests.conftest import APP1, ROOT, Server, write_config


@pytest.fixture
def server(tmp_path: Path, serve: type[Server]) -> Server:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    return serve(config).start()


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `queuey bench ARGS` in this process; its exit status and summary."""
    capsys.readouterr()
    status = main(["bench", *args])
    return status, capsys.readouterr().out


def figure(summary: str, label: str) -> str:
    """The text after ``label:`` in a summary."""
    found = re.search(rf"^{label}:\s+(.*)$", summary, re.MULTILINE)
    assert found, summary
    return found.group(1)


def stored(server: Server, queue: str, partitions: str = "1") -> list[dict[str, str]]:
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        response = http.get(f"/v1/app1/{queue}", params={"limit": 1000, "partitions": partitions})
    assert response.status_code == 200, response.text
    messages: list[dict[str, str]] = response.json()["messages"]
    return messages


def test_posts_then_reads_back(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    common = [server.url, "--app", "app1", "--key", "key1", "--queue", "load"]

    status, out = bench(capsys, *common, "--create", "--messages", "200", "--concurrency", "8")
    assert status == 0, out
    assert figure(out, "posted").startswith("200 messages in 200 requests, ")
    assert figure(out, "errors") == "0"
    assert re.fullmatch(r"[\d,.]+ requests/s, [\d,.]+ messages/s", figure(out, "rate"))
    assert re.fullmatch(
        r"p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms", figure(out, "latency")
    )

    status, out = bench(capsys, *common, "--messages", "100", "--batch", "30", "--size", "64")
    assert status == 0, out
    assert figure(out, "posted").startswith("100 messages in 4 requests, ")

    status, out = bench(capsys, *common, "--read", "--batch", "40")
    assert status == 0, out
    # 300 messages, 40 a page: 8 pages, the last one short.
    assert figure(out, "read").startswith("300 messages in 8 requests, ")
    assert figure(out, "repeats") == "0"
    assert figure(out, "errors") == "0"

    # Two readers, each stopping after 50 messages.
    status, out = bench(
        capsys, *common, "--read", "--batch", "1", "--concurrency", "2", "--messages", "50"
    )
    assert status == 0, out
    assert figure(out, "read").startswith("100 messages in 100 requests, ")

    # Really in the queue, in posting order within each run.
    messages = stored(server, "load")
    assert len(messages) == 300
    assert Counter(len(m["body"]) for m in messages) == {140: 200, 64: 100}
    assert {m["body"] for m in messages} == {message_body(i, 140) for i in range(200)} | {
        message_body(i, 64) for i in range(100)
    }


def test_reads_every_partition(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        assert http.post("/v1/app1", json={"queue_name": "parts", "partitions": 3}).is_success
        for i in range(30):
            posted = http.post(
                "/v1/app1/parts", content=f"m{i}", headers={"X-Partition": "123"[i % 3]}
            )
            assert posted.status_code == 201
    status, out = bench(
        capsys, server.url, "--app", "app1", "--key", "key1", "--queue", "parts", "--read",
        "--batch", "4",
    )  # fmt: skip
    assert status == 0, out
    # Per partition: 10 messages in pages of 4 -> 3 pages.
    assert figure(out, "read").startswith("30 messages in 9 requests, ")
    assert len(stored(server, "parts", "1,2,3")) == 30


def test_errors_are_counted_by_status(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = bench(
        capsys, server.url, "--app", "app1", "--key", "key1", "--queue", "missing",
        "--messages", "5", "--concurrency", "2",
    )  # fmt: skip
    assert status == 1
    assert figure(out, "posted").startswith("0 messages in 5 requests")
    assert figure(out, "errors") == "5 (404: 5)"

    status, out = bench(
        capsys, server.url, "--app", "app1", "--key", "wrong", "--queue", "x", "--messages", "3"
    )
    assert status == 1
    assert figure(out, "errors") == "3 (401: 3)"


def test_as_a_command(server: Server) -> None:
    """The installed command line: a queue made by --create, weak, posted in batches."""
    result = subprocess.run(
        [sys.executable, "-m", "queuey.cli", "bench", server.url, "--app", "app1",
         "--key", "key1", "--queue", "cmd", "--create", "--consistency", "weak",
         "--messages", "250", "--batch", "100", "--concurrency", "3"],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert figure(result.stdout, "posted").startswith("250 messages in 3 requests, ")
    assert result.stderr == ""  # no terminal, no progress bar
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        listing = http.get("/v1/app1", params={"details": "1", "offset": "cmd", "limit": "1"})
    assert listing.json()["queues"][0]["consistency"] == "weak"
    assert len(stored(server, "cmd")) == 250


def test_consumes_with_a_group(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    common = [server.url, "--app", "app1", "--key", "key1", "--queue", "work"]
    status, out = bench(capsys, *common, "--create", "--messages", "200", "--batch", "50")
    assert status == 0, out

    status, out = bench(capsys, *common, "--group", "g", "--batch", "20", "--concurrency", "3")
    assert status == 0, out
    assert out.startswith(
        f"POST {server.url}/v1/app1/work/groups/g/claim and ack: 20 per claim, 3 consumers\n"
    )
    # 10 claims of 20, their 10 acks, and one empty claim per consumer at the end.
    assert figure(out, "consumed").startswith("200 messages in 23 requests, ")
    assert (figure(out, "repeats"), figure(out, "errors")) == ("0", "0")

    # Another group (made by the run), stopping after 50 messages in all.
    status, out = bench(
        capsys, *common, "--group", "h", "--batch", "20", "--concurrency", "2", "--messages", "50"
    )
    assert status == 0, out
    assert figure(out, "consumed").startswith("50 messages in ")
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        for group, done in (("g", 200), ("h", 50)):
            state = http.get(f"/v1/app1/work/groups/{group}").json()
            assert (state["acknowledged"], state["partitions"][0]["in_flight"]) == (done, 0)


def test_a_missing_group_queue_fails_with_one_line(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["bench", server.url, "--app", "app1", "--key", "key1", "--queue", "nope", "--group", "g"]
    )
    assert status == 1
    assert capsys.readouterr().err == (
        "queuey bench: cannot use group g: InvalidQueueName: Queue of that name was not found.\n"
    )


def test_unreachable_server_fails_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["bench", "http://127.0.0.1:9", "--app", "a", "--key", "k", "--queue", "q", "--create"]
    )
    assert status == 1
    assert capsys.readouterr().err.startswith("queuey bench: cannot reach http://127.0.0.1:9")


@pytest.mark.parametrize(
    "flag",
    [["--batch", "1001"], ["--messages", "0"], ["--size", "x"], ["--read", "--group", "g"]],
)
def test_bad_options_are_usage_errors(flag: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "http://h", "--app", "a", "--key", "k", "--queue", "q", *flag])
    assert stopped.value.code == 2


def test_progress_bar_redraws_one_line() -> None:
    stream = io.StringIO()
    bar = Progress(stream)
    bar.start(200)
    bar.advance(100, errors=2)
    bar.close()
    lines = stream.getvalue().split("\r")
    assert lines[0] == ""
    assert lines[1].startswith("[------------------------------]   0% 0/200 messages")
    assert lines[-1].startswith("[###############---------------]  50% 100/200 messages")
    assert lines[-1].rstrip().endswith("errors 2")
    assert stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    off = Progress(quiet, enabled=False)
    off.start(10)
    off.advance(10)
    off.close()
    assert quiet.getvalue() == ""


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0
    assert message_body(12, 6) == "12:xxx"
    assert message_body(123456, 3) == "123"


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


@needs_wrk
def test_bench_group_script_claims_and_acks(server: Server, tmp_path: Path) -> None:
    """bench/lua/group.lua for 1 s: every claim's receipts acknowledged, as the server counts."""
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        made = http.post("/v1/app1", json={"queue_name": "work", "partitions": 4})
        assert made.status_code == 201, made.text
        for _ in range(3):
            posted = http.post("/v1/app1/work", json={"messages": [{"body": "x"}] * 1000})
            assert posted.status_code == 201, posted.text
        group = http.put("/v1/app1/work/groups/g", json={"guarantee": "at_least_once"})
        assert group.status_code == 201, group.text
    args = ("key=key1", "path=/v1/app1/work/groups/g", "limit=100")
    run = wrk.run(wrk.Load("group.lua", f"{server.url}/", args, connections=4), 1, [])
    got = run.extra
    assert run.errors == {}
    assert (got["unmatched"], got["lost"]) == (0, 0)
    assert got["claims"] >= 1 and got["acks"] >= 1
    assert got["claim_ms_count"] == got["claims"]  # every answer matched to its claim
    assert 0 < got["claim_ms_p50_us"] <= got["claim_ms_p99_us"]
    assert got["acked"] <= got["claimed"] <= 3000
    # Cut off at the end: at most one claim's worth unacknowledged per connection.
    assert got["claimed"] - got["acked"] <= 4 * 100
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        seen = http.get("/v1/app1/work/groups/g").json()
    assert (seen["delivered"], seen["acknowledged"]) == (got["claimed"], got["acked"])

    # Paced: the same script with a rate sends on its schedule.
    paced = wrk.run(wrk.Load("group.lua", f"{server.url}/", (*args, "rate=20"), 2), 1, [])
    assert paced.errors == {}
    assert paced.extra["paced_sends"] >= 1
    assert paced.extra["claims"] >= 1

    found = state(tmp_path / "q.db", "g", "work", ["g"], None, app="app1")
    assert (found.groups, found.label) == (1, "g")
    assert 1 <= found.windows <= 4
    assert found.window_bytes > 0
    assert found.records + found.recent >= 1


def test_bench_report_has_the_consumer_groups_section() -> None:
    report = Report(quick=True)
    report.settings(runs=1, seconds=2, warmup=1, connections=64, server_cores="0",
                    loadgen_cores="1")  # fmt: skip
    report.target("claim and ack vs batch POST", ">= 50%", "8% (1 vs 2 msg/s)", False,
                  "group-claim", "server CPU")  # fmt: skip
    claim = Row("claim 100 and ack them", 110.0, 4500.0, 400.0, 500.0, 0.9, 0.1, 0, (4500.0,))
    idle = GroupState("1 group, idle", 1, 4, 32_046, 400, 600, None)
    crowd = GroupState("10,000 groups", 10_000, 0, 0, 0, 0, 630_000)
    report.groups([claim], [idle, crowd])
    text = report.render(["CPU: test"], [("Python", "3")])
    section = text.split("## Consumer groups", 1)[1].split("\n## ", 1)[0]
    row = "| claim 100 and ack them | 110 | 4,500 | 400.00 | 500.00 | 0.90 | 0.10 | 0 | 4,500 |"
    assert row in section
    assert "runs (messages/s)" in section
    assert "| 1 group, idle | 1 | 4 | 32,046 | 400 | 600 |  |" in section
    assert "| 10,000 groups | 10,000 | 0 | 0 | 0 | 0 | 0.63 MB (63 bytes a group) |" in section
    assert "| claim and ack vs batch POST | >= 50% | 8% (1 vs 2 msg/s) | **missed** |" in text


# -- make bench: issue 13's targets, the two-worker section, Cassandra's CPU per message --


def fake(
    key: str,
    rps: float,
    server: float = 1.0,
    loadgen: float = 0.5,
    other: float = 0.0,
    per_request: float = 1.0,
    p50: float = 2.0,
    p99: float = 5.0,
) -> Scenario:
    """A scenario with one run of 2 s at ``rps``, the server using ``server`` cores."""
    made = Scenario(key, key, BenchServer(key, ["true"], 1, Path("/dev/null"), None),
                    wrk.Load("static.lua", "http://x"), per_request)  # fmt: skip
    cpu = CpuShare(server=server, loadgen=loadgen, other=other)
    made.runs.append(wrk.Run(int(rps * 2), 2.0, p50, p50, p99, p99, {}, cpu))
    return made


def harness(tmp_path: Path, *scenarios: Scenario) -> Bench:
    made = Bench(dataclasses.replace(Settings.from_environment(), work=tmp_path))
    made.scenarios.update({s.key: s for s in scenarios})
    return made


def test_bench_records_issue_13s_targets_each_with_its_scenario(tmp_path: Path) -> None:
    """The single-server targets, exactly as issue 13 states them; a miss names its scenario."""
    bench = harness(
        tmp_path,
        fake("baseline", 10_000), fake("baseline-post", 9_000),
        fake("bare-asgi", 30_000), fake("bare-asgi-post", 25_000), fake("bare-rsgi-post", 40_000),
        fake("post-weak", 9_500), fake("post-strong", 9_000),
        fake("batch-weak", 2_000, per_request=100), fake("read-10", 10_000, per_request=10),
        fake("mixed-half", 3_000, server=0.5, p99=12.0),
    )  # fmt: skip
    bench.single_targets()
    found = {t.name: t for t in bench.report.targets}
    assert len(found) == 6 and all(t.scenario for t in found.values())  # each can be profiled
    post = found["single POST (weak) vs bare Starlette (POST)"]
    assert (post.goal, post.met, post.scenario) == (">= 1.0x", True, "post-weak")
    assert post.figure == "1.06x (9,500 vs 9,000 req/s)"
    bare = found["single POST (weak) vs a bare granian handler (ASGI, POST)"]
    assert (bare.goal, bare.met) == (">= 0.35x", True)
    assert bare.figure.startswith("0.38x (9,500 vs 25,000 req/s; for information, the RSGI")
    strong = found["strong POST vs weak POST"]
    assert (strong.goal, strong.met, strong.figure) == (
        ">= 0.9x",
        True,
        "0.95x (9,000 vs 9,500 req/s)",
    )
    read = found["GET range limit 10 vs bare Starlette (GET)"]
    assert (read.goal, read.met, read.scenario) == (">= 1.0x", True, "read-10")
    batch = found["batch POST (100 per request, weak)"]
    assert (batch.goal, batch.met, batch.figure) == (">= 150,000 msg/s", True, "200,000 msg/s")
    mixed = found["mixed load at half the maximum rate: p99"]
    assert (mixed.met, mixed.scenario) == (False, "mixed-half")
    assert mixed.bound.startswith("the server's core was 50% busy at this rate")
    assert bench.report.missed_scenarios() == ["mixed-half"]


def test_bench_claim_and_ack_has_its_own_rate_target(tmp_path: Path) -> None:
    """Issue 13's 75,000 messages/s beside issue 9's share of the batch POST."""
    flat_out = fake("group-claim", 800, per_request=100)
    bench = harness(
        tmp_path, fake("batch-weak", 1_000, per_request=100), flat_out,
        fake("group-half", 400, server=0.3, p99=4.0),
        fake("group-post-1", 5_000), fake("group-post-many", 5_000),
        fake("group-claim-1", 800, per_request=100), fake("group-claim-many", 800, per_request=100),
    )  # fmt: skip
    bench.group_targets(flat_out, bench.scenarios["group-half"], 40_000)
    found = {t.name: t for t in bench.report.targets}
    rate = found["claim and ack in batches of 100 (1 group, 4 partitions)"]
    assert (rate.goal, rate.figure, rate.met) == (">= 75,000 msg/s", "80,000 msg/s", True)
    share = found["claim and ack (100 a claim, 1 group, 4 partitions) vs batch POST"]
    assert (share.goal, share.met) == (">= 50%", True)
    assert all(t.met for t in found.values())


def test_bench_two_workers_section_says_how_each_load_scaled(tmp_path: Path) -> None:
    """Requests per server-CPU-second beside requests/s, and a paragraph per load."""
    found = {
        "workers-1-post": fake("workers-1-post", 5_000, server=1.0, loadgen=0.6),
        "workers-2-post": fake("workers-2-post", 6_000, server=1.5, loadgen=0.4, other=0.0),
        "workers-1-read": fake("workers-1-read", 4_000, server=1.0, loadgen=0.5, per_request=10),
        "workers-2-read": fake("workers-2-read", 6_000, server=1.4, loadgen=0.5, per_request=10),
    }
    assert found["workers-2-post"].per_cpu_second == 4_000
    assert found["workers-2-post"].cpu_per_request == 1.5 / 6_000
    lines = scaling.section(found, 64)
    text = "\n".join(lines)
    assert "requests per server-CPU-second" in text and "/proc/PID/stat" in text
    assert (
        "| POST one 140-byte message, weak queue | 2 | 6,000 | 1.50 |  |  | 0.40 | 0.00 | 4,000 |"
        in text
    )
    assert "| GET a range, limit 10 | 1 | 4,000 | 1.00 |  |  | 0.50 | 0.00 | 4,000 |" in text
    writes, reads = lines[-2], lines[-1]
    assert writes.startswith("- **Writes** scale 1.20x with two workers: 6,000 against 5,000")
    assert "(1.50x)" in writes and "(0.80x)" in writes
    assert "Both cores were busy (1.90 of 2" in writes
    assert "costs the server 1.25x the CPU" in writes and "write lock" in writes
    assert reads.startswith("- **Reads** scale 1.50x with two workers")
    assert "not saturated (1.90 of 2" not in reads and "Both cores were busy" in reads
    assert "about 2 × 4,286 = 8,571 requests/s" in reads and "WAL" in reads


def test_bench_cassandra_cpu_per_message_targets(tmp_path: Path) -> None:
    """Queuey's own CPU per 10,000 POSTs and messages read on Cassandra, beside SQLite's."""
    bench = harness(
        tmp_path,
        fake("post-weak", 10_000, server=1.0), fake("read-10", 5_000, per_request=10),
        fake("post-strong", 8_000),
        fake("cassandra-post-weak", 1_000, server=1.0),
        fake("cassandra-read-10", 4_000, server=1.0, per_request=10),
    )  # fmt: skip
    assert on_cassandra.per_10k(bench.scenarios["post-weak"]) == 1.0
    assert on_cassandra.per_10k(bench.scenarios["cassandra-read-10"]) == 0.25
    on_cassandra.targets(bench)
    posts, reads = bench.report.targets
    assert posts.name == "one Cassandra node: web node CPU per 10,000 POSTs vs SQLite"
    assert (posts.goal, posts.met, posts.scenario) == ("<= 2x", False, "cassandra-post-weak")
    assert posts.figure == "10.0x (10.00 vs 1.00 CPU s; 1,000 vs 100 µs a POST)"
    assert posts.bound.startswith("the web node's own CPU per request")  # no throughput talk
    assert (reads.met, reads.figure.split(" (")[0]) == (True, "1.2x")
    lines = on_cassandra.section(bench, [bench.scenarios["cassandra-post-weak"]])
    assert (
        "| POST one message, weak (Cassandra: ONE) | 10,000 POSTs | 1.00 | 10.00 | 10.0x |" in lines
    )
    assert "| GET a range, limit 10 | 10,000 messages read | 0.20 | 0.25 | 1.2x |" in lines
    assert bench.report.missed_scenarios() == ["cassandra-post-weak"]


def test_bench_cassandra_that_does_not_start_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench goes on; the CPU targets say why they were not measured."""
    from scripts import cassandra_runner

    def fail(nodes: int) -> None:
        raise cassandra_runner.CassandraError("node 1 did not come up")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(cassandra_runner, "is_up", lambda node: False)
    monkeypatch.setattr(cassandra_runner, "start", fail)
    monkeypatch.setattr(cassandra_runner, "stop", lambda: None)
    bench = harness(tmp_path)
    on_cassandra.measure(bench)
    assert [(t.measured, t.scenario) for t in bench.report.targets] == [(False, None)] * 2
    assert "node 1 did not come up" in bench.report.targets[0].bound
    assert bench.report.missed_scenarios() == []
    bench.report.settings(runs=1, seconds=2, warmup=1, connections=64, server_cores="0",
                          loadgen_cores="1")  # fmt: skip
    text = bench.report.render(["CPU: test"], [("Python", "3")])
    assert "| <= 2x |  | not measured | not measured: the Cassandra node did not start" in text
    assert any("Cassandra skipped" in n for n in bench.report.notes)


def test_bench_report_sections_in_the_order_measured() -> None:
    report = Report(quick=False)
    report.settings(runs=3, seconds=8, warmup=2, connections=64, server_cores="0",
                    loadgen_cores="1")  # fmt: skip
    row = Row("POST", 100.0, None, 1.0, 2.0, 1.0, 0.0, 0, (100.0,))
    report.figures("One server", [row], after=["", "Under the table."])
    report.section("Two workers on two cores (`--workers 2`)", ["Made elsewhere."])
    text = report.render(["CPU: test"], [("Python", "3")])
    one = text.index("## One server\n\n| scenario |")
    assert text.index("Under the table.") > one
    assert text.index("## Two workers on two cores (`--workers 2`)\n\nMade elsewhere.") > one


def test_bench_counts_wrks_cpu_from_proc() -> None:
    """The CPU of waited-for children (wrk) from /proc/self/stat, as os.times() counts it."""
    before = machine.children_seconds()
    subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True)
    after = machine.children_seconds()
    usage = os.times()
    assert after >= before
    assert abs(after - (usage.children_user + usage.children_system)) < 0.02


def test_bench_cassandra_runs_that_answered_nothing_are_not_measured(tmp_path: Path) -> None:
    """A node stalled by other work answers no request: no ratio, no 'met' from a zero."""
    bench = harness(
        tmp_path, fake("post-weak", 10_000), fake("read-10", 5_000, per_request=10),
        fake("cassandra-post-weak", 0, server=0.0), fake("cassandra-read-10", 0, per_request=10),
    )  # fmt: skip
    on_cassandra.targets(bench)
    assert [(t.measured, t.met) for t in bench.report.targets] == [(False, False)] * 2
    assert "no request was answered during the runs of cassandra-post-weak" in (
        bench.report.targets[0].bound
    )
    lines = on_cassandra.section(bench, [])
    assert "| GET a range, limit 10 | 10,000 messages read | 0.20 | no requests answered |  |" in (
        lines
    )


def test_bench_counts_connections_by_process_and_reads_thread_states() -> None:
    """From /proc: established connections to a port by process; a thread's state."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            assert scaling.connections(port, [os.getpid(), 999_999_999]) == (3, 0)
        finally:
            for sock in clients + accepted:
                sock.close()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    threads = [
        threading.Thread(target=time.sleep, args=(1,)),
        threading.Thread(target=stop.wait),
        threading.Thread(target=spin),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    try:
        seen = [scaling.thread_state(os.getpid(), t.native_id or 0) for t in threads]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert seen[:2] == ["busy", "futex"]  # asleep (nanosleep), waiting on a futex
    assert seen[2] in ("cpu", "futex")  # spinning, unless it waits for the GIL just then
    assert scaling.thread_state(999_999_999, 1) == "other"


def test_bench_reads_the_commits_from_metrics(server: Server) -> None:
    before = scaling.commits(server.url)
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        assert http.post("/v1/app1", json={"queue_name": "c"}).status_code == 201
        for _ in range(3):
            assert http.post("/v1/app1/c", content=b"x").status_code == 201
    made = scaling.commits(server.url) - before
    assert 1 <= made.commits <= 4 and made.writes == 4  # the queue and three posts
    assert made.seconds >= 0
    assert scaling.commits("http://127.0.0.1:9") == scaling.Commits()


def test_bench_two_workers_section_shows_what_the_writers_did() -> None:
    found = {
        f"workers-{w}-{kind}": fake(f"workers-{w}-{kind}", 5_000 * w, server=w * 0.9)
        for w in (1, 2)
        for kind in ("post", "read")
    }
    two = found["workers-2-post"]
    two.runs[0] = dataclasses.replace(
        two.runs[0], cpu=dataclasses.replace(two.runs[0].cpu, processes=(1.2, 0.6, 0.01))
    )
    two.observed.append((60, 4))
    counted = {1: scaling.Commits(1_000, 5_000, 0.5), 2: scaling.Commits(2_000, 6_000, 1.0)}
    writers = {
        1: scaling.Writers([Counter(cpu=50, futex=50)], (64,), (1.1, 0.0)),
        2: scaling.Writers(
            [Counter(busy=5, cpu=45, futex=50), Counter(busy=40, cpu=10, disk=10, futex=40)],
            (33, 31),
            (0.9, 0.8, 0.0),
        ),
    }
    lines = scaling.section(found, 64, 0.3, counted, writers, 6)
    text = "\n".join(lines)
    row = (
        "| POST one 140-byte message, weak queue | 2 | 10,000 | 1.80 | 1.20 + 0.60 + 0.01 | 60+4 |"
    )
    assert row in text
    assert "1 worker: 1,000 commits of 5.0 POSTs each, 0.50 ms in `COMMIT` each" in text
    assert "2 workers: 2,000 commits of 3.0 POSTs each, 0.50 ms in `COMMIT` each." in text
    assert "| 1 | the worker's | 64 | 1.10 + 0.00 | 0% | 50% | 0% | 50% | 0% |" in lines
    assert "| 2 | 1 of 2 | 33+31 | 0.90 + 0.80 + 0.00 | 5% | 45% | 0% | 50% | 0% |" in lines
    assert "| 2 | 2 of 2 | 33+31 | 0.90 + 0.80 + 0.00 | 40% | 10% | 10% | 40% | 0% |" in lines
    assert "How connections reach the workers: `queuey serve` shares one listening socket" in text
    writes = next(line for line in lines if line.startswith("- **Writes**"))
    assert "Why: wrk's connections went mostly to one worker in every run (60+4)" in writes
    assert writes.endswith(
        "Sampled (table above), with the connections spread 33+31: the writer threads slept in"
        " SQLite's busy handler 5% and 40% of the time, waiting for the other worker's"
        " transactions, against 0% with one worker."
    )
    # The sampled spell itself lopsided: its sleeps say little.
    lopsided = {1: writers[1], 2: dataclasses.replace(writers[2], connections=(64, 0))}
    lines = scaling.section(found, 64, 0.3, counted, lopsided, 6)
    writes = next(line for line in lines if line.startswith("- **Writes**"))
    assert "In the spell sampled (table above) the connections went 64+0" in writes
    # Without py-spy (no writer threads found): the commits, neither the table nor the sample.
    bare = scaling.section(found, 64, 0.3, counted, {1: scaling.Writers(), 2: scaling.Writers()})
    assert "busy handler (the other" not in "\n".join(bare)
    assert "Sampled" not in "\n".join(bare)


@pytest.mark.parametrize(
    ("spreads", "said"),
    [
        ([(63, 1), (64, 0)], "went mostly to one worker in every run (63+1, 64+0)"),
        ([(33, 31)], "were spread about evenly (33+31), both workers serving."),
        ([(33, 31), (60, 4)], "were spread unevenly in some runs (33+31, 60+4)."),
        ([(64,), ()], ""),
    ],
)
def test_bench_says_how_the_connections_spread(spreads: list[tuple[int, ...]], said: str) -> None:
    assert said in scaling.spread_sentence(spreads)
    assert bool(said) == bool(scaling.spread_sentence(spreads))


def test_bench_cpu_meter_splits_the_server_by_process() -> None:
    meter = machine.CpuMeter([os.getpid(), 999_999_999])  # this process, and one long gone
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass
    share = meter.stop()
    assert len(share.processes) == 2 and share.processes[1] == 0.0
    assert share.processes[0] == share.server > 0.1


def test_bench_inprocess_prints_each_scenarios_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/inprocess.py calls the app in memory: every scenario answers (a request
    refused would raise) and gets a positive CPU figure per unit; the environment is left
    as it was (its metrics directory is gone after the run)."""
    before = os.environ.get(MULTIPROC_ENV)
    assert inprocess.main(["--requests", "64", "--concurrency", "8"]) == 0
    assert os.environ.get(MULTIPROC_ENV) == before
    lines = capsys.readouterr().out.splitlines()
    found = {}
    for line in lines[1:]:
        matched = re.fullmatch(r"\s+(\S+)\s+([0-9.]+) µs CPU per (\w+).*", line)
        assert matched is not None, line
        name, cost, unit = matched.groups()
        found[name] = (float(cost), unit)
    assert set(found) == set(inprocess.SCENARIOS)
    assert all(cost > 0 for cost, _ in found.values())
    assert found["claim-ack"][1] == "message" and found["post"][1] == "request"
