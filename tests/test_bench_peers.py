"""bench/peers without building a peer: command lines, configs, parsing, the table, processes.

Nothing here downloads or builds: the peers' own programs are stood in for
by the test's Python, and the Go load generator's output by a line it printed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from bench import report, wrk
from bench.harness import SIZE, Harness, Scenario, Settings
from bench.machine import CpuShare
from bench.peers import build, centrifugo, elasticmq, jetstream, load, measure
from bench.peers.peer import QUEUEY_POST_STRONG, QUEUEY_POST_WEAK, QUEUEY_READ, Entry
from bench.peers.server import PeerServer, http_ok, start
from bench.servers import Fleet, Server, free_port

# What natsload printed for a 2-second read run (bench/peers/natsload -mode read).
NATSLOAD_LINE = (
    'WRK-JSON {"requests":6550,"duration_us":2015426,"bytes":9170000,"connect_errors":0,'
    '"read_errors":1,"write_errors":0,"status_errors":2,"timeouts":3,"mean_us":18529.2,'
    '"max_us":257682,"p50_us":13290,"p90_us":30192,"p99_us":127180,"p99.9_us":254070,'
    '"messages":65500}'
)
CPU = CpuShare(server=1.0, loadgen=0.5, other=0.1)


@pytest.fixture
def bench(tmp_path: Path) -> Harness:
    return Harness(dataclasses.replace(Settings.from_environment(), work=tmp_path))


def test_natsload_output_reads_as_wrk_output() -> None:
    run = wrk.parse(f"stream BENCH: 1000 messages of 140 bytes\n{NATSLOAD_LINE}\n", CPU)
    assert run.requests == 6550
    assert run.seconds == pytest.approx(2.015426)
    assert run.rps == pytest.approx(6550 / 2.015426)
    assert (run.p50_ms, run.p90_ms, run.p99_ms, run.max_ms) == (13.29, 30.192, 127.18, 257.682)
    assert run.errors == {"read": 1, "non-2xx": 2, "timeout": 3}
    assert run.extra == {"messages": 65500.0}


def test_natsload_prints_every_field_that_wrk_parse_reads() -> None:
    source = (jetstream.LOADGEN / "main.go").read_text()
    fields = json.loads(NATSLOAD_LINE.removeprefix("WRK-JSON "))
    for name in fields:
        if not re.fullmatch(r"p[0-9.]+_us", name):
            assert f'"{name}":' in source
    # The percentiles are written in a loop, named as report.lua names them.
    assert "[]float64{50, 90, 99, 99.9}" in source
    assert '`"p%s_us":%d`, formatPercent(p)' in source


def test_natsload_pins_the_nats_go_the_report_names() -> None:
    go_mod = (jetstream.LOADGEN / "go.mod").read_text()
    assert re.search(rf"^require github.com/nats-io/nats.go {jetstream.NATS_GO}$", go_mod, re.M)
    go_sum = (jetstream.LOADGEN / "go.sum").read_text()
    assert f"github.com/nats-io/nats.go {jetstream.NATS_GO} h1:" in go_sum


def test_natsload_command_line(bench: Harness) -> None:
    program = build.PEERS / "natsload"
    made = load.nats_load(bench, program, "nats://127.0.0.1:4222", "-mode", "read", "-batch", "10")
    command = dataclasses.replace(made, cores="1").command(2)
    assert command == [
        "taskset", "-c", "1", str(program), "-server", "nats://127.0.0.1:4222",
        "-connections", str(bench.settings.connections), "-duration", "2s", "-timeout", "10s",
        "-mode", "read", "-batch", "10", "-size", str(SIZE),
    ]  # fmt: skip
    assert dataclasses.replace(made, cores=None).command(8)[0] == str(program)
    assert made.shell(2).split()[0:1] != ["wrk"]
    assert "var/peers/natsload" in made.shell(2)


def test_http_load_runs_the_peer_script_with_wrk(bench: Harness) -> None:
    made = load.http_load(bench, "http://127.0.0.1:9/api", '{"m":"%MESSAGE%"}', header="K: v")
    command = made.command(2)
    script = command[command.index("-s") + 1]
    assert Path(script) == load.REQUEST_LUA  # not joined to bench/lua/
    assert load.REQUEST_LUA.is_file()
    assert command[command.index("--") + 1 :] == [
        "method=POST", "type=application/json", 'body={"m":"%MESSAGE%"}', f"size={SIZE}",
        "header=K: v",
    ]  # fmt: skip
    assert "bench/peers/lua/request.lua" in made.shell(2)
    lua = load.REQUEST_LUA.read_text()
    assert "%%MESSAGE%%" in lua  # the Lua pattern of load.MESSAGE
    assert load.MESSAGE == "%MESSAGE%"


def test_elasticmq_command_and_config() -> None:
    command = elasticmq.command("/lib", "/work/elasticmq.conf")
    assert command[0] == "java"
    assert "-Dconfig.file=/work/elasticmq.conf" in command
    assert command[-3:] == ["-cp", "/lib/*", "org.elasticmq.server.Main"]
    config = elasticmq.config(4321, None)
    assert 'include classpath("application.conf")' in config
    assert "bind-port = 4321" in config and "port = 4321," in config
    assert "messages-storage { enabled = false }" in config  # what DURABILITY says
    assert "memory only" in elasticmq.DURABILITY
    on_disk = elasticmq.config(4321, Path("/work/elasticmq-h2"))
    assert 'messages-storage { enabled = true, uri = "jdbc:h2:/work/elasticmq-h2" }' in on_disk
    assert on_disk.count("{") == on_disk.count("}")
    assert elasticmq.target("SendMessage") == {
        "X-Amz-Target": "AmazonSQS.SendMessage",
        "Content-Type": "application/x-amz-json-1.0",
    }


def test_centrifugo_config_and_publish_body() -> None:
    config = json.loads(centrifugo.config(8123))
    assert config["http_server"] == {"address": "127.0.0.1", "port": 8123}
    assert config["http_api"]["key"] == centrifugo.API_KEY
    assert config["health"]["enabled"] is True
    history = config["channel"]["without_namespace"]
    assert history == {"history_size": centrifugo.HISTORY_SIZE, "history_ttl": "300s"}
    body = centrifugo.publish_body("bench", load.MESSAGE).replace(load.MESSAGE, "x" * SIZE)
    assert json.loads(body) == {"channel": "bench", "data": {"body": "x" * SIZE}}


@pytest.mark.parametrize("always", [False, True])
def test_jetstream_config_states_its_fsync_mode(always: bool, tmp_path: Path) -> None:
    text = jetstream.config(4222, 8222, tmp_path / "store", always)
    assert "listen: 127.0.0.1:4222" in text and "http: 127.0.0.1:8222" in text
    assert f'store_dir: "{tmp_path / "store"}"' in text
    assert ("sync_interval: always" in text) is always
    assert text.count("{") == text.count("}")


def _scenario(key: str, rps: float, per_request: float = 1.0) -> Scenario:
    server = Server(key, ["true"], 1, Path("/dev/null"), None)
    made = Scenario(key, key, server, wrk.Load("static.lua", "http://x"), per_request)
    made.runs.append(wrk.Run(int(rps * 2), 2.0, 1.0, 2.0, 3.0, 4.0, {}, CPU))
    return made


def test_table_divides_queueys_figure_by_the_peers() -> None:
    entries = [
        Entry(_scenario(QUEUEY_POST_WEAK, 3000), "Queuey", "POST", "weak", None),
        Entry(_scenario(QUEUEY_POST_STRONG, 2000), "Queuey", "POST", "strong", None),
        Entry(_scenario(QUEUEY_READ, 2500, 10), "Queuey", "GET", "weak", None),
        Entry(_scenario("peer-send", 600), "Peer 1", "send", "memory", QUEUEY_POST_WEAK),
        Entry(_scenario("peer-sync", 1000), "Peer 1", "send", "fsync", QUEUEY_POST_STRONG),
        Entry(_scenario("peer-read", 5000, 10), "Peer 1", "read", "memory", QUEUEY_READ),
        Entry(_scenario("peer-idle", 0), "Peer 1", "send", "memory", QUEUEY_POST_WEAK),
    ]
    rows = measure.table(entries)
    assert [r.versus for r in rows] == [None, None, None, 5.0, 2.0, 0.5, None]
    assert rows[5].figure.messages == 50_000
    text = report.Report(quick=True)
    text.peers(rows, "How it was measured.", ["A remark."])
    lines = text.peer_table()
    assert lines[:3] == ["## Peers", "", "How it was measured."]
    assert "| Peer 1 | send | memory | 600 |  | 5.00 | 1.00 | 3.00 |" in "\n".join(lines)
    assert "| Peer 1 | read | memory | 5,000 | 50,000 | 0.50 |" in "\n".join(lines)
    assert lines[-1] == "- A remark."


def test_report_renders_the_peer_table_only_when_measured() -> None:
    def rendered(with_peers: bool) -> str:
        made = report.Report(quick=True)
        made.settings(runs=1, seconds=2, warmup=1, connections=64, server_cores="0",
                      loadgen_cores="1")  # fmt: skip
        if with_peers:
            entry = Entry(_scenario("peer", 100), "Peer 1", "send", "memory", None)
            made.peers(measure.table([entry]), "Intro.", [])
        return made.render(["CPU: test"], [("Python", "3")])

    assert "## Peers" not in rendered(False)
    assert "## Peers\n\nIntro.\n" in rendered(True)


@pytest.mark.parametrize(("value", "on"), [("", False), ("0", False), ("1", True)])
def test_bench_peers_switches_them_on(
    value: str, on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_PEERS", value)
    assert measure.enabled() is on


def test_chosen_peers_by_key() -> None:
    assert [p.key for p in measure.chosen()] == ["elasticmq", "centrifugo", "jetstream"]
    assert [p.name for p in measure.chosen(["jetstream"])] == ["NATS JetStream"]
    versions = {p.key: p.version for p in measure.PEERS}
    assert versions == {"elasticmq": "1.7.1", "centrifugo": "v6.9.1", "jetstream": "v2.15.3"}


class FakePeer:
    """A peer that builds, starts and measures as told, without a process."""

    version = "1"

    def __init__(self, key: str, built: bool = True, error: Exception | None = None) -> None:
        self.key, self.name, self.built, self.error = key, key.title(), built, error

    def build(self) -> None:
        if not self.built:
            raise build.BuildError("mvn is not installed")

    def start(self, bench: Harness, fleet: Fleet) -> list[Entry]:
        if self.error is not None:
            fleet.servers.append(Server(self.key, ["true"], 1, Path("/dev/null"), None))
            raise self.error
        scenario = bench.add(_scenario(f"peers-{self.key}", 1500))
        return [Entry(scenario, f"{self.name} 1", "send", "memory", QUEUEY_POST_WEAK)]


@pytest.fixture
def measured(bench: Harness, monkeypatch: pytest.MonkeyPatch) -> list[list[Scenario]]:
    """Queuey's figures without its server, and what bench.measure is asked to measure."""
    queuey = [Entry(_scenario(QUEUEY_POST_WEAK, 3000), "Queuey", "POST", "weak", None)]
    monkeypatch.setattr(measure, "queuey", lambda bench, fleet: list(queuey))
    asked: list[list[Scenario]] = []
    monkeypatch.setattr(bench, "measure", asked.append)
    return asked


def test_peers_that_fail_are_left_out_and_said_so(
    bench: Harness, measured: list[list[Scenario]], monkeypatch: pytest.MonkeyPatch
) -> None:
    peers = [
        FakePeer("unbuilt", built=False),
        FakePeer("refused", error=httpx.ConnectError("connection refused")),
        FakePeer("exited", error=RuntimeError("exited: bad flag")),
        FakePeer("good"),
    ]
    built = measure.build(peers, bench)
    assert [p.key for p in built] == ["refused", "exited", "good"]
    servers: list[list[str]] = []
    monkeypatch.setattr(
        Fleet, "stop_all", lambda fleet: servers.append([s.name for s in fleet.servers])
    )
    measure.measure(bench, built)
    assert servers == [[]]  # the failed peers' servers were stopped and dropped at once
    assert [s.key for s in measured[0]] == [QUEUEY_POST_WEAK, "peers-good"]
    assert [(r.system, r.versus) for r in bench.report.peer_rows] == [
        ("Queuey", None), ("Good 1", 2.0),
    ]  # fmt: skip
    notes = "\n".join(bench.report.notes)
    assert "Unbuilt was left out of the peer table: mvn is not installed" in notes
    assert "Refused was left out of the peer table: connection refused" in notes
    assert "Exited was left out of the peer table: exited: bad flag" in notes
    assert measure.LEFT_OUT in bench.report.peer_remarks


def test_a_failed_run_leaves_the_rest_of_the_report(
    bench: Harness, measured: list[list[Scenario]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(scenarios: list[Scenario]) -> None:
        raise RuntimeError("wrk failed (1): connection refused")

    monkeypatch.setattr(bench, "measure", fail)
    measure.measure(bench, [FakePeer("good")])
    assert bench.report.peer_rows == []
    assert any("The peer table failed while measuring: wrk failed" in n for n in bench.report.notes)


def _no_subprocess(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"ran {args}")


def test_builds_are_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "PEERS", tmp_path)
    monkeypatch.setattr(subprocess, "run", _no_subprocess)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    folder = tmp_path / "nats-server-v2.15.3"
    folder.mkdir()
    (folder / "nats-server").write_bytes(b"")
    (folder / ".complete").write_text(f"{jetstream.MODULE}@v2.15.3\n")
    assert build.go_install(jetstream.MODULE, "v2.15.3", "nats-server") == folder / "nats-server"
    lib = tmp_path / "elasticmq-1.7.1" / "lib"
    lib.mkdir(parents=True)
    (lib.parent / ".complete").write_text("org.elasticmq:elasticmq-server_2.13:1.7.1\n")
    assert build.maven_fetch("org.elasticmq", "elasticmq-server_2.13", "1.7.1", "elasticmq") == lib
    # Another version is not the one built: it would be built (here: refused).
    with pytest.raises(AssertionError, match="/usr/bin/go', 'install'"):
        build.go_install(jetstream.MODULE, "v2.15.2", "nats-server")


def test_a_failed_build_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "PEERS", tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(build.BuildError, match="go is not installed"):
        build.go_install(centrifugo.MODULE, "v0.0.0-test", "centrifugo")
    with pytest.raises(build.BuildError, match="mvn is not installed"):
        build.maven_fetch("org.elasticmq", "elasticmq-server_2.13", "0.0.0-test", "elasticmq")
    assert list(tmp_path.iterdir()) == []  # nothing half made


def test_go_builds_keep_their_caches_under_var_peers() -> None:
    env = build.go_environment()
    for name in ("GOPATH", "GOMODCACHE", "GOCACHE"):
        assert Path(env[name]).is_relative_to(build.PEERS)
    assert env["GOTOOLCHAIN"] == "local"


SERVE = textwrap.dedent(
    """
    import http.server, sys
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def test_a_peer_server_is_probed_and_stopped_with_its_fleet(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-c", SERVE, str(port)]
    probe = http_ok(f"http://127.0.0.1:{port}/health")
    with Fleet(tmp_path, None) as fleet:
        server = start(fleet, PeerServer("stand-in", command, port, tmp_path / "log", None, probe))
        process = server.process
        assert process is not None and process.poll() is None
        assert probe()
    assert process.wait(timeout=10) is not None  # stopped by the fleet
    assert not probe()


def test_a_peer_server_that_exits_is_reported_and_stopped(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "print('no such option'); raise SystemExit(2)"]
    never = PeerServer("broken", command, 1, tmp_path / "log", None, lambda: False)
    with Fleet(tmp_path, None) as fleet, pytest.raises(RuntimeError, match="no such option"):
        start(fleet, never)
    assert never.process is None  # the fleet has stopped it


def test_try_once_refuses_an_error_status() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(port)])
    try:
        probe = http_ok(f"http://127.0.0.1:{port}/")
        for _ in range(100):
            if probe():
                break
            time.sleep(0.05)
        # The stand-in answers POST with 501: not a figure to measure.
        with pytest.raises(RuntimeError, match="501"):
            load.try_once(f"http://127.0.0.1:{port}/", '{"m":"%MESSAGE%"}', {})
    finally:
        process.kill()
        process.wait()


def test_bench_peers_is_documented_with_the_pinned_versions() -> None:
    import bench.run

    assert "``BENCH_PEERS``" in (bench.run.__doc__ or "")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "BENCH_PEERS=1 make bench" in readme
    for peer in measure.PEERS:
        assert f"{peer.name} {peer.version}" in " ".join(readme.split())
