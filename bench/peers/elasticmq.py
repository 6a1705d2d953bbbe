"""ElasticMQ: an SQS-compatible queue server (Scala, on the JVM), from Maven Central.

Run as its distribution does (``java -Dconfig.file=... org.elasticmq.server.Main``,
heap 256 MB to 1 GB), twice: with its default storage, in memory only
(``messages-storage.enabled = false``: nothing survives a restart), and with
``messages-storage`` in an H2 file (the H2 2.2.224 that ElasticMQ depends on,
with H2's defaults: its background writer puts changes in the file, and
strace saw no fsync while SendMessage was answered). Requests use the SQS
JSON protocol that the AWS SDKs speak: ``SendMessage`` for a POST,
``ReceiveMessage`` of up to 10 with ``VisibilityTimeout`` 0 for a read (the
messages stay visible, as a Queuey read leaves them; ElasticMQ reads from
memory in both modes, so reads are measured in memory only). ElasticMQ checks
no signature, so none is sent. The JVM's JIT compiler gets extra untimed
load first (:meth:`ElasticMQ.warmup`).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench.harness import SIZE, Harness
from bench.peers import build
from bench.peers.load import MESSAGE, http_load, try_once
from bench.peers.peer import QUEUEY_POST_WEAK, QUEUEY_READ, Entry
from bench.peers.server import PeerServer, http_ok, start
from bench.servers import Fleet, free_port

GROUP = "org.elasticmq"
ARTIFACT = "elasticmq-server_2.13"
VERSION = "1.7.1"
MAIN = "org.elasticmq.server.Main"
HEAP = ("-Xms256m", "-Xmx1g")
ACCOUNT = "000000000000"
CONTENT_TYPE = "application/x-amz-json-1.0"
DURABILITY = "memory only (the default: no messages-storage); nothing survives a restart"
H2 = (
    "`messages-storage` in an H2 file (H2 2.2.224's defaults: its background writer puts"
    " changes in the file, no fsync per commit): a crash may lose the last writes"
)
FILLED = 1000
"""Messages in the queue that reads receive from, as in Queuey's ``read`` queue."""

CONFIG = """include classpath("application.conf")
node-address {{ protocol = "http", host = "127.0.0.1", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}
messages-storage {{ {storage} }}
queues {{ bench {{}}, read {{}} }}
"""


def target(action: str) -> dict[str, str]:
    """The headers of one SQS JSON-protocol call."""
    return {"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": CONTENT_TYPE}


def config(port: int, h2: Path | None) -> str:
    """ElasticMQ's configuration: its address, its queues, and messages in memory or in ``h2``."""
    storage = "enabled = false" if h2 is None else f'enabled = true, uri = "jdbc:h2:{h2}"'
    return CONFIG.format(port=port, storage=storage)


def command(lib: str, config: str) -> list[str]:
    """The server's command line: its jars on the class path, its config file."""
    return ["java", *HEAP, f"-Dconfig.file={config}", "-cp", f"{lib}/*", MAIN]


class ElasticMQ:
    key = "elasticmq"
    name = "ElasticMQ"
    version = VERSION

    def build(self) -> None:
        self.lib = build.maven_fetch(GROUP, ARTIFACT, VERSION, "elasticmq")

    def start(self, bench: Harness, fleet: Fleet) -> list[Entry]:
        system, warmup = f"ElasticMQ {VERSION}", self.warmup(bench)
        send_header = "X-Amz-Target: AmazonSQS.SendMessage"
        entries = []
        for label, h2 in (("memory", None), ("h2", bench.settings.work / "elasticmq-h2")):
            server, url = self._start(bench, fleet, label, h2)
            send = json.dumps({"QueueUrl": f"{url}/{ACCOUNT}/bench", "MessageBody": MESSAGE})
            durability = DURABILITY if h2 is None else H2
            title = f"ElasticMQ ({'in memory' if h2 is None else 'H2 file'}):"
            entries.append(Entry(
                bench.scenario(f"peers-elasticmq-{label}-send",
                               f"{title} SendMessage of {SIZE} bytes", server,
                               http_load(bench, f"{url}/", send, CONTENT_TYPE, send_header)),
                system, "SQS SendMessage", durability, QUEUEY_POST_WEAK, warmup,
            ))  # fmt: skip
            if h2 is not None:
                continue
            read = f"{url}/{ACCOUNT}/read"
            fill(url, read)
            receive = json.dumps({"QueueUrl": read, "MaxNumberOfMessages": 10,
                                  "VisibilityTimeout": 0})  # fmt: skip
            check(url, send, receive)
            entries.append(Entry(
                bench.scenario(f"peers-elasticmq-{label}-receive", f"{title} ReceiveMessage of 10",
                               server, http_load(bench, f"{url}/", receive, CONTENT_TYPE,
                                                 "X-Amz-Target: AmazonSQS.ReceiveMessage"),
                               per_request=10),
                system, "SQS ReceiveMessage, 10 at most, VisibilityTimeout 0", durability,
                QUEUEY_READ, warmup,
            ))  # fmt: skip
        bench.report.note(
            f"ElasticMQ: the `read` queue of the in-memory server holds {FILLED:,} messages of"
            f" {SIZE} bytes, sent with SendMessageBatch before the runs; the JVM gets"
            f" {warmup:g} s more of each load untimed, for its JIT compiler."
        )
        return entries

    def _start(
        self, bench: Harness, fleet: Fleet, label: str, h2: Path | None
    ) -> tuple[PeerServer, str]:
        """One ElasticMQ server, and its URL."""
        work = bench.settings.work
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        path = work / f"elasticmq-{label}.conf"
        path.write_text(config(port, h2), encoding="utf-8")
        probe = http_ok(f"{url}/", b"{}", target("ListQueues"))
        server = start(fleet, PeerServer(
            f"elasticmq-{label}", command(str(self.lib), str(path)), port,
            work / f"elasticmq-{label}.log", bench.server_cores, probe,
        ))  # fmt: skip
        bench.report.server(f"ElasticMQ {VERSION}, messages {label}", server.shell)
        return server, url

    @staticmethod
    def warmup(bench: Harness) -> float:
        return 2.0 if bench.settings.quick else 10.0


def check(url: str, send: str, receive: str) -> None:
    """A send and a receive as the loads send them: a message id, then 10 messages."""
    sent = try_once(f"{url}/", send, target("SendMessage"))
    got = len(try_once(f"{url}/", receive, target("ReceiveMessage")).get("Messages", []))
    if "MessageId" not in sent or got != 10:
        raise RuntimeError(f"ElasticMQ answered {sent} to a send and {got} messages to a receive")


def fill(url: str, queue: str) -> None:
    """Put FILLED messages of SIZE bytes in ``queue``, ten a request."""
    with httpx.Client(timeout=30) as client:
        for first in range(0, FILLED, 10):  # SendMessageBatch takes 10 at most
            batch = [{"Id": str(i), "MessageBody": "x" * SIZE} for i in range(first, first + 10)]
            body = json.dumps({"QueueUrl": queue, "Entries": batch})
            answer = client.post(f"{url}/", content=body, headers=target("SendMessageBatch"))
            answer.raise_for_status()
