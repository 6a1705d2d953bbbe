"""Centrifugo: a real-time messaging server (Go), from the Go module proxy.

Its memory engine (the default) keeps everything in the process: with
channel history on (1,000 publications for 5 minutes, so that a publish is
stored and a history read has something to read), a publish answered by the
HTTP API is in the process's memory only and nothing survives a restart. A
POST is the server API's ``publish`` (``POST /api/publish``, the key in
``X-API-Key``), a read of 10 its ``history`` with ``limit`` 10.
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

MODULE = "github.com/centrifugal/centrifugo/v6"
VERSION = "v6.9.1"
API_KEY = "bench-api-key"
HISTORY_SIZE = 1000
HISTORY_TTL = "300s"
DURABILITY = (
    f"memory only (memory engine, channel history of {HISTORY_SIZE:,} for {HISTORY_TTL});"
    " nothing survives a restart"
)


def config(port: int) -> str:
    """Centrifugo's JSON configuration: the HTTP API with a key, history in every channel."""
    return json.dumps(
        {
            "http_server": {"address": "127.0.0.1", "port": port},
            "http_api": {"key": API_KEY},
            "health": {"enabled": True},
            "log": {"level": "error"},
            "usage_stats": {"disabled": True},
            "channel": {
                "without_namespace": {"history_size": HISTORY_SIZE, "history_ttl": HISTORY_TTL}
            },
        },
        indent=2,
    )


def publish_body(channel: str, text: str) -> str:
    """A publish of one message: ``data`` must be JSON, so the message is a string in it."""
    return json.dumps({"channel": channel, "data": {"body": text}})


def check(url: str, history: str, headers: dict[str, str]) -> None:
    """A publish and a history read as the loads send them: no error, 10 publications."""
    published = try_once(f"{url}/api/publish", publish_body("bench", MESSAGE), headers)
    read = try_once(f"{url}/api/history", history, headers)
    got = len(read.get("result", {}).get("publications", []))
    if "error" in published or "error" in read or got != 10:
        raise RuntimeError(f"Centrifugo answered {published} to a publish and {read} to a read")


class Centrifugo:
    key = "centrifugo"
    name = "Centrifugo"
    version = VERSION

    def build(self) -> None:
        self.binary = build.go_install(MODULE, VERSION, "centrifugo")

    def start(self, bench: Harness, fleet: Fleet) -> list[Entry]:
        work = bench.settings.work
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        path = work / "centrifugo.json"
        path.write_text(config(port), encoding="utf-8")
        server = start(fleet, PeerServer(
            "centrifugo", [str(self.binary), "--config", str(path)], port,
            work / "centrifugo.log", bench.server_cores, http_ok(f"{url}/health"),
        ))  # fmt: skip
        bench.report.server(f"Centrifugo {VERSION}", server.shell)
        headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
        with httpx.Client(timeout=30) as client:
            for _ in range(HISTORY_SIZE):
                body = publish_body("read", "x" * SIZE)
                answer = client.post(f"{url}/api/publish", content=body, headers=headers)
                answer.raise_for_status()
        bench.report.note(
            f"Centrifugo: channel `read` holds {HISTORY_SIZE:,} publications of {SIZE} bytes"
            ' before the runs; each publication\'s `data` is `{"body": MESSAGE}`, since'
            " Centrifugo takes JSON."
        )
        system = f"Centrifugo {VERSION}"
        key = f"X-API-Key: {API_KEY}"
        history = json.dumps({"channel": "read", "limit": 10})
        check(url, history, headers)
        return [
            Entry(
                bench.scenario(
                    "peers-centrifugo-publish", f"Centrifugo: publish {SIZE} bytes", server,
                    http_load(bench, f"{url}/api/publish", publish_body("bench", MESSAGE),
                              header=key),
                ),
                system, "HTTP API publish", DURABILITY, QUEUEY_POST_WEAK,
            ),
            Entry(
                bench.scenario(
                    "peers-centrifugo-history", "Centrifugo: history, limit 10", server,
                    http_load(bench, f"{url}/api/history", history, header=key),
                    per_request=10,
                ),
                system, "HTTP API history, limit 10", DURABILITY, QUEUEY_READ,
            ),
        ]  # fmt: skip
