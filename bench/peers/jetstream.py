"""NATS JetStream: nats-server from the Go module proxy, driven by bench/peers/natsload.

Two servers, one stream each (file storage, one replica): one with
JetStream's default ``sync_interval`` (2 minutes: a PubAck means the message
was written to the file, in the page cache, before the answer; it is fsynced
within 2 minutes, so it survives the server's crash but not the machine's),
one with ``sync_interval: always`` (fsynced before the PubAck, like a strong
Queuey queue). JetStream speaks the NATS protocol, not HTTP, so wrk cannot
drive it: natsload (a Go program pinned to nats.go in its go.mod) holds 64
connections, each with one request in flight as wrk's are. A publish is
``js.Publish`` waiting for its PubAck; a read is one batched direct get of
10 messages from sequence 1, which reads without consuming, as a Queuey GET
does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.harness import SIZE, Harness
from bench.peers import build
from bench.peers.load import nats_load
from bench.peers.peer import QUEUEY_POST_STRONG, QUEUEY_POST_WEAK, QUEUEY_READ, Entry
from bench.peers.server import PeerServer, http_ok, start
from bench.servers import Fleet, free_port

MODULE = "github.com/nats-io/nats-server/v2"
VERSION = "v2.15.3"
NATS_GO = "v1.56.0"
"""nats.go, natsload's client: pinned in bench/peers/natsload/go.mod (a test checks they agree)."""
LOADGEN = Path(__file__).resolve().parent / "natsload"
FILLED = 1000
SYNC_DEFAULT = (
    "file storage; written to the file before the PubAck, fsynced every 2 min"
    " (`sync_interval` default): survives a crash of the server, not of the machine"
)
SYNC_ALWAYS = "file storage; fsynced before the PubAck (`sync_interval: always`)"

CONFIG = """listen: 127.0.0.1:{port}
http: 127.0.0.1:{monitor}
jetstream {{
  store_dir: "{store}"
{sync}}}
"""


def config(port: int, monitor: int, store: Path, always: bool) -> str:
    """nats-server's configuration: JetStream on, its store, its fsync mode."""
    sync = "  sync_interval: always\n" if always else ""
    return CONFIG.format(port=port, monitor=monitor, store=store, sync=sync)


class JetStream:
    key = "jetstream"
    name = "NATS JetStream"
    version = VERSION

    def build(self) -> None:
        self.server = build.go_install(MODULE, VERSION, "nats-server")
        self.loadgen = build.go_build(LOADGEN, "natsload")

    def start(self, bench: Harness, fleet: Fleet) -> list[Entry]:
        system = f"NATS JetStream {VERSION}"
        publish = ("-mode", "publish")
        entries = []
        for label, always, versus in (
            ("default", False, QUEUEY_POST_WEAK), ("always", True, QUEUEY_POST_STRONG),
        ):  # fmt: skip
            server, url = self._start(bench, fleet, label, always)
            key = f"peers-nats-publish-{label}"
            title = f"NATS JetStream ({'fsync each' if always else 'fsync every 2 min'}):"
            durability = SYNC_ALWAYS if always else SYNC_DEFAULT
            entries.append(Entry(
                bench.scenario(key, f"{title} publish {SIZE} bytes, wait for the PubAck", server,
                               nats_load(bench, self.loadgen, url, *publish)),
                system, "publish, wait for the PubAck", durability, versus,
            ))  # fmt: skip
            if not always:
                entries.append(Entry(
                    bench.scenario("peers-nats-read", f"{title} direct get of 10 messages",
                                   server, nats_load(bench, self.loadgen, url, "-mode", "read",
                                                     "-batch", "10"), per_request=10),
                    system, "batched direct get of 10 from sequence 1", durability, QUEUEY_READ,
                ))  # fmt: skip
        bench.report.note(
            f"NATS JetStream: bench/peers/natsload (nats.go {NATS_GO}) creates each server's"
            f" stream (file storage, 1 replica, direct gets allowed) and publishes {FILLED:,}"
            f" messages of {SIZE} bytes before the runs; a figure's `requests/s` counts"
            " publishes answered by a PubAck, or batched gets answered up to their"
            " end-of-batch marker."
        )
        return entries

    def _start(
        self, bench: Harness, fleet: Fleet, label: str, always: bool
    ) -> tuple[PeerServer, str]:
        """One nats-server, its stream created and filled, and its URL."""
        work = bench.settings.work
        port = monitor = free_port()
        while monitor == port:  # a port just freed may be handed out again
            monitor = free_port()
        store = work / f"nats-{label}"
        path = work / f"nats-{label}.conf"
        path.write_text(config(port, monitor, store, always), encoding="utf-8")
        probe = http_ok(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true")
        server = start(fleet, PeerServer(
            f"nats-{label}", [str(self.server), "-c", str(path)], port,
            work / f"nats-{label}.log", bench.server_cores, probe,
        ))  # fmt: skip
        bench.report.server(f"nats-server {VERSION}, sync_interval {label}", server.shell)
        url = f"nats://127.0.0.1:{port}"
        subprocess.run(
            [str(self.loadgen), "-server", url, "-mode", "setup", "-fill", str(FILLED),
             "-size", str(SIZE)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return server, url
