"""`queuey bench` against a real `queuey serve` process, plus its small parts.

Also the pieces of `make bench`'s consumer-group figures: bench/lua/group.lua
under wrk against a real server, the state read from the file, the report.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bench import wrk
from bench.groups import state
from bench.report import GroupState, Report, Row
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
