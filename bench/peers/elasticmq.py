"""ElasticMQ: an SQS-compatible queue server (Scala, on the JVM), from Maven Central.

Run as its distribution does (``java -Dconfig.file=... org.elasticmq.server.Main``)
with its default storage: in memory only (``messages-storage.enabled = false``),
so nothing survives a restart. Requests use the SQS JSON protocol that the
AWS SDKs speak: ``SendMessage`` for a POST, ``ReceiveMessage`` of up to 10
with ``VisibilityTimeout`` 0 for a read (the messages stay visible, as a
Queuey read leaves them). ElasticMQ checks no signature, so none is sent.
"""

from __future__ import annotations

import json

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
FILLED = 1000
"""Messages in the queue that reads receive from, as in Queuey's ``read`` queue."""

CONFIG = """include classpath("application.conf")
node-address {{ protocol = "http", host = "127.0.0.1", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}
messages-storage {{ enabled = false }}
queues {{ bench {{}}, read {{}} }}
"""


def target(action: str) -> dict[str, str]:
    """The headers of one SQS JSON-protocol call."""
    return {"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": CONTENT_TYPE}


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
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        work = bench.settings.work
        config = work / "elasticmq.conf"
        config.write_text(CONFIG.format(port=port), encoding="utf-8")
        probe = http_ok(f"{url}/", b"{}", target("ListQueues"))
        server = start(fleet, PeerServer(
            "elasticmq", command(str(self.lib), str(config)), port, work / "elasticmq.log",
            bench.server_cores, probe,
        ))  # fmt: skip
        bench.report.server(f"ElasticMQ {VERSION}", server.shell)
        queue, read = f"{url}/{ACCOUNT}/bench", f"{url}/{ACCOUNT}/read"
        fill(url, read)
        bench.report.note(
            f"ElasticMQ: its `read` queue holds {FILLED:,} messages of {SIZE} bytes, sent with"
            " SendMessageBatch before the runs; the JVM gets"
            f" {self.warmup(bench):g} s more of each load untimed, for its JIT compiler."
        )
        send = json.dumps({"QueueUrl": queue, "MessageBody": MESSAGE})
        receive = json.dumps({"QueueUrl": read, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0})
        check(url, send, receive)
        system = f"ElasticMQ {VERSION}"
        return [
            Entry(
                bench.scenario(
                    "peers-elasticmq-send", f"ElasticMQ: SendMessage of {SIZE} bytes", server,
                    http_load(bench, f"{url}/", send, CONTENT_TYPE,
                              "X-Amz-Target: AmazonSQS.SendMessage"),
                ),
                system, "SQS SendMessage", DURABILITY, QUEUEY_POST_WEAK, self.warmup(bench),
            ),
            Entry(
                bench.scenario(
                    "peers-elasticmq-receive", "ElasticMQ: ReceiveMessage of 10", server,
                    http_load(bench, f"{url}/", receive, CONTENT_TYPE,
                              "X-Amz-Target: AmazonSQS.ReceiveMessage"),
                    per_request=10,
                ),
                system, "SQS ReceiveMessage, 10 at most, VisibilityTimeout 0", DURABILITY,
                QUEUEY_READ, self.warmup(bench),
            ),
        ]  # fmt: skip

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
