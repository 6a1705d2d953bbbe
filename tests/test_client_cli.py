"""The shell verbs ``queuey post``, ``read``, ``consume`` and ``queues`` as real processes
against a real ``queuey serve``: output, errors as one line, Ctrl-C."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from queuey.client import Client
from queuey.client.shell import since
from tests.conftest import ROOT, Server, free_port
from tests.test_client_support import KEY, configure, unique, wait_until

VERBS = ("post", "read", "consume", "queues")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(configure(tmp_path_factory.mktemp("shell"))).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def env(server: Server) -> dict[str, str]:
    """The environment the verbs find the server in."""
    return {**os.environ, "QUEUEY_URL": server.url, "QUEUEY_APP": "app1", "QUEUEY_KEY": KEY}


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, app="app1", key=KEY) as c:
        yield c


def queuey(
    env: dict[str, str], *args: str, stdin: str = "", cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queuey.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def line_of(stream: IO[str], timeout: float = 20.0) -> str:
    """The next line of a child's output, or a failure after ``timeout`` (never a hang)."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no line in {timeout} s"
    return stream.readline()


@pytest.fixture(autouse=True)
def _ctrl_c_heard() -> Iterator[None]:
    """Commands started here hear SIGINT as at a terminal: a shell without job control
    starts background commands (a CI script run with ``&``) with SIGINT ignored, which
    the pytest under it and the commands it starts would inherit (never hearing Ctrl-C).
    A Python handler is not inherited: the children start with the default action."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def started(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "queuey.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_help(verb: str) -> None:
    result = queuey(dict(os.environ), verb, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: queuey {verb}")
    assert "QUEUEY_URL" in result.stdout and "--key" in result.stdout


def test_post_prints_ids_and_stores(env: dict[str, str], client: Client) -> None:
    queue = client.queue(unique())
    queue.create(partitions=2)
    one = queuey(env, "post", queue.name, "first", "--partition", "2", "--ttl", "600")
    assert (one.returncode, one.stderr) == (0, "")
    [sent_id] = one.stdout.split()
    piped = queuey(env, "post", queue.name, "-", "--content-type", "text/csv", stdin="a,b\n")
    lines = queuey(env, "post", queue.name, "--lines", "--json", stdin="x\n\ny\nz\n")
    assert lines.returncode == 0, lines.stderr
    answers = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [sorted(a) for a in answers] == [["key", "partition", "timestamp"]] * 3
    messages = {m.body: m for m in queue.iter()}
    assert sorted(messages) == ["a,b", "first", "x", "y", "z"]  # one trailing newline dropped
    assert (messages["first"].message_id, messages["first"].partition) == (sent_id, 2)
    assert messages["a,b"].content_type == "text/csv"
    assert messages["a,b"].message_id == piped.stdout.strip()
    # Flags override the environment.
    wrong = queuey({**env, "QUEUEY_KEY": "nope"}, "post", queue.name, "x", "--key", KEY)
    assert wrong.returncode == 0, wrong.stderr


def test_read_prints_json_lines_or_bodies(env: dict[str, str], client: Client) -> None:
    queue = client.queue(unique())
    queue.create(partitions=2)
    sent = queue.post_many([{"body": f"m{i}", "partition": 1 + i % 2} for i in range(6)])
    result = queuey(env, "read", queue.name)
    assert (result.returncode, result.stderr) == (0, "")
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(p["message_id"] for p in printed) == sorted(s.message_id for s in sent)
    assert list(printed[0]) == ["message_id", "timestamp", "body", "partition", "content_type"]
    bodies = queuey(env, "read", queue.name, "--body", "--partitions", "2", "--limit", "2")
    assert bodies.stdout == "m1\nm3\n"
    by_id = queuey(env, "read", queue.name, "--body", "--since", sent[2].message_id)
    assert by_id.stdout.split() == ["m2", "m4", "m3", "m5"]  # each partition from that id on
    recent = queuey(env, "read", queue.name, "--body", "--since", "10m", "--partitions", "1")
    assert recent.stdout == "m0\nm2\nm4\n"
    assert queuey(env, "read", queue.name, "--since", "now").stdout == ""


def test_since_takes_durations() -> None:
    assert since("now", now=1000.0) == "1000.0000000"
    assert since("90s", now=1000.0) == "910.0000000"
    assert since("10m", now=1000.0) == "400.0000000"
    assert since("2h", now=100_000.0) == "92800.0000000"
    assert since("1d", now=100.0) == "0.0000000"
    assert since("1795804105.8058270") == "1795804105.8058270"


def test_read_follow_tails_until_ctrl_c(env: dict[str, str], client: Client) -> None:
    queue = client.queue(unique())
    queue.create()
    queue.post("older")
    old = queue.post("old")
    # Since the last message (inclusive): no race with the command's start-up.
    tail = started(env, "read", queue.name, "--since", old.message_id, "--follow", "--body")
    try:
        assert tail.stdout is not None
        assert line_of(tail.stdout) == "old\n"
        queue.post("new 1")
        assert line_of(tail.stdout) == "new 1\n"
        queue.post("new 2")
        assert line_of(tail.stdout) == "new 2\n"
    finally:
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=10)
    assert (tail.returncode, err) == (130, "")


def test_consume_runs_a_command_per_message(
    env: dict[str, str], client: Client, tmp_path: Path
) -> None:
    queue = client.queue(unique())
    queue.create()
    queue.post_many([{"body": "one"}, {"body": "two"}])
    out = tmp_path / "out"
    # A worker in one line: fails on each first delivery, succeeds on the second.
    script = f'cat >> {out}; echo " $QUEUEY_DELIVERIES" >> {out}; test $QUEUEY_DELIVERIES -ge 2'
    result = queuey(
        env, "consume", queue.name, "--group", "g", "--create", "--wait", "1", "--count", "2",
        "--", "sh", "-c", script,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(out.read_text().splitlines()) == ["one 1", "one 2", "two 1", "two 2"]
    failures = result.stderr.splitlines()
    assert len(failures) == 2
    assert all(
        line.startswith("queuey consume: handler failed on 1:")
        and line.endswith("releasing it: sh exited with status 1")
        for line in failures
    )
    state = queue.group("g").state()
    assert (state["acknowledged"], state["partitions"][0]["pending"]) == (2, 0)


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_consume_ctrl_c_gives_the_message_back(
    env: dict[str, str], client: Client, stop: signal.Signals, status: int
) -> None:
    queue = client.queue(unique())
    queue.create()
    group = queue.group("g")
    group.create(lease_seconds=600)
    queue.post("slow")
    worker = started(env, "consume", queue.name, "-g", "g", "--", "sleep", "30")
    try:
        wait_until(lambda: group.state()["partitions"][0]["in_flight"] == 1)
    finally:
        worker.send_signal(stop)
        _, err = worker.communicate(timeout=10)
    assert (worker.returncode, err) == (status, "")
    [again] = group.claim()
    assert (again.body, again.deliveries) == ("slow", 2)


def test_queues_lists_names_or_details(server: Server) -> None:
    with Client(server.url, app="app2", key="key2") as other:
        names = sorted(unique() for _ in range(3))
        for name in names:
            other.queue(name).create()
    env = {**os.environ, "QUEUEY_URL": server.url, "QUEUEY_APP": "app2", "QUEUEY_KEY": "key2"}
    result = queuey(env, "queues")
    assert (result.returncode, result.stdout) == (0, "".join(f"{n}\n" for n in names))
    counted = queuey(env, "queues", "--count")
    items = [json.loads(line) for line in counted.stdout.splitlines()]
    assert [(i["queue_name"], i["count"], i["partitions"]) for i in items] == [
        (n, 0, 1) for n in names
    ]


NO_GROUP = "Group of that name was not found."
#: (arguments, exit status, the one line on stderr after "queuey VERB: "); Q: a fresh queue.
ERRORS = [
    (("read", "missing"), 1, "InvalidQueueName: Queue of that name was not found."),
    (("read", "Q", "--since", "x"), 1, 'since: "x" is not a message id or a timestamp'),
    (("post", "Q", "--partition", "7", "hi"), 1, "partition: 7 is greater than maximum value 1"),
    (("post", "Q", ""), 1, "the message is empty"),
    (("consume", "Q", "-g", "no", "--", "true"), 1, f"InvalidGroupName: {NO_GROUP}"),
    (("consume", "Q", "-g", "g", "--", "no-such-cmd"), 1, "no-such-cmd: command not found"),
    (("consume", "Q", "-g", "g"), 2, "no command given (queuey consume QUEUE -g G -- CMD)"),
    (("consume", "Q", "--", "true"), 2, "the following arguments are required: --group/-g"),
    (("post",), 2, "the following arguments are required: queue"),
    (("queues", "--key", "nope"), 1, "InvalidApplicationKey: No application is known by that key."),
]  # fmt: skip


@pytest.mark.parametrize(("args", "status", "line"), ERRORS)
def test_errors_are_one_line(
    env: dict[str, str], client: Client, args: tuple[str, ...], status: int, line: str
) -> None:
    queue = client.queue(unique())
    queue.create()
    result = queuey(env, *(queue.name if a == "Q" else a for a in args))
    expected = f"queuey {args[0]}: {line}\n"
    assert (result.returncode, result.stdout, result.stderr) == (status, "", expected)


def test_a_bad_flag_is_one_line_naming_it(env: dict[str, str]) -> None:
    result = queuey(env, "read", "q", "--limit", "0")
    assert (result.returncode, result.stderr) == (2, "--limit: 0 is less than minimum value 1\n")


def test_an_unreachable_server_is_one_line(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = queuey(env, "queues", "--url", url, "--retries", "1")
    assert result.returncode == 1
    assert result.stderr.startswith(f"queuey queues: cannot reach {url}: ")
    assert result.stderr.count("\n") == 1
