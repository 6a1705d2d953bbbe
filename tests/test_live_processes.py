"""Live reading on real ``queuey serve`` processes over sockets (SPEC §3 ``wait``, §7 streams).

Two servers share one SQLite file, as two processes (or web nodes) would: a
post through one wakes held reads and streams on the other. Time bounds are
SPEC's (within 1 s of readability), checked generously.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from queuey.client import Client
from queuey.client.sse import Event, EventParser
from tests.conftest import APP1, KEYS, Server, write_config

#: SPEC: within 1 s of readability; generously.
BOUND = 5.0


def config(tmp_path: Path, *server_lines: str) -> Path:
    path = write_config(tmp_path / "live.toml", f"sqlite:///{tmp_path / 'live.db'}", 1)
    text = path.read_text().replace("[server]\n", "[server]\n" + "".join(server_lines), 1)
    path.write_text(text)
    return path


class Reader:
    """An event stream read on a thread, its events collected as they arrive."""

    def __init__(self, url: str, path: str, headers: dict[str, str]) -> None:
        self.events: list[Event] = []
        self.raw = b""
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(url, path, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(BOUND), "the stream did not open"

    def _run(self, url: str, path: str, headers: dict[str, str]) -> None:
        parser = EventParser()
        try:
            with (
                httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=120)) as http,
                http.stream("GET", path, headers=headers) as response,
            ):
                assert response.status_code == 200
                self.opened.set()
                for chunk in response.iter_raw():
                    self.raw += chunk
                    self.events.extend(parser.feed(chunk))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def wait_for(self, count: int) -> list[Event]:
        deadline = time.monotonic() + BOUND
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.events)


def post(url: str, queue: str, body: str) -> str:
    response = httpx.post(f"{url}/v1/app1/{queue}", content=body, headers=APP1, timeout=10)
    assert response.status_code == 201, response.text
    message_id: str = response.json()["messages"][0]["key"]
    return message_id


def bodies(events: list[Event]) -> list[str]:
    return [json.loads(e.data)["body"] for e in events]


def test_a_post_through_one_process_wakes_held_reads_and_streams_on_another(
    tmp_path: Path, serve: type[Server]
) -> None:
    path = config(tmp_path)
    one, other = serve(path).start(), serve(path).start()
    httpx.post(f"{one.url}/v1/app1", json={"queue_name": "live"}, headers=APP1).raise_for_status()
    reader = Reader(other.url, "/v1/app1/live/stream", APP1)
    held: list[httpx.Response] = []

    def hold() -> None:
        held.append(
            httpx.get(f"{other.url}/v1/app1/live", params={"wait": "30"}, headers=APP1, timeout=60)
        )

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.5)
    assert not held
    posted = time.monotonic()
    message_id = post(one.url, "live", "across processes")
    holder.join(BOUND)
    assert held and time.monotonic() - posted < BOUND
    assert [m["message_id"] for m in held[0].json()["messages"]] == [message_id]
    events = reader.wait_for(1)
    assert time.monotonic() - posted < BOUND
    assert [e.id for e in events] == [message_id]
    assert reader.raw.startswith(b"retry: 1000\n\n")
    # A held read answered on timeout: [] (and the metrics count open streams).
    started = time.monotonic()
    empty = httpx.get(
        f"{other.url}/v1/app1/live",
        params={"wait": "1", "since": f"{time.time() + 60:.7f}"},
        headers=APP1,
        timeout=10,
    )
    assert empty.json() == {"status": "ok", "messages": []}
    assert time.monotonic() - started >= 1.0
    metrics = httpx.get(f"{other.url}/__metrics__").text
    assert "queuey_open_streams 1.0" in metrics


def test_a_stream_resumes_across_a_restart_with_no_gap_or_repeat(
    tmp_path: Path, serve: type[Server]
) -> None:
    path = config(tmp_path)
    first = serve(path).start()
    httpx.post(f"{first.url}/v1/app1", json={"queue_name": "r"}, headers=APP1).raise_for_status()
    ids = [post(first.url, "r", "m0")]
    reader = Reader(first.url, f"/v1/app1/r/stream?since={ids[0]}", APP1)
    ids.append(post(first.url, "r", "m1"))
    assert [e.id for e in reader.wait_for(2)] == ids
    first.stop()  # SIGTERM: the stream ends cleanly (a complete chunked answer)
    assert reader.ended.wait(BOUND) and reader.error is None
    second = serve(path).start()
    ids += [post(second.url, "r", f"m{i}") for i in (2, 3)]
    resumed = Reader(second.url, "/v1/app1/r/stream", {**APP1, "Last-Event-ID": ids[1]})
    ids.append(post(second.url, "r", "m4"))
    events = resumed.wait_for(3)
    assert [e.id for e in events] == ids[2:]
    assert bodies(events) == ["m2", "m3", "m4"]


def test_heartbeats_and_the_end_after_stream_max_seconds(
    tmp_path: Path, serve: type[Server]
) -> None:
    server = serve(config(tmp_path, "stream_heartbeat = 0.3\n", "stream_max_seconds = 2\n")).start()
    httpx.post(f"{server.url}/v1/app1", json={"queue_name": "h"}, headers=APP1).raise_for_status()
    started = time.monotonic()
    reader = Reader(server.url, "/v1/app1/h/stream", APP1)
    assert reader.ended.wait(2 + BOUND) and reader.error is None
    assert time.monotonic() - started >= 2
    assert reader.raw.count(b": heartbeat\n\n") >= 3 and reader.events == []


def test_a_client_that_stops_reading_is_dropped(tmp_path: Path, serve: type[Server]) -> None:
    """About 1 MB waiting for it in Queuey (beyond the socket's own buffers): the
    connection is dropped, and the server goes on serving."""
    server = serve(config(tmp_path)).start()
    httpx.post(f"{server.url}/v1/app1", json={"queue_name": "s"}, headers=APP1).raise_for_status()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = KEYS["app1"][0]
    sock.sendall(
        b"GET /v1/app1/s/stream HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Application " + key.encode() + b"\r\n\r\n"
    )
    time.sleep(0.5)
    body = "x" * 60_000
    with httpx.Client(base_url=server.url, headers=APP1, timeout=30) as http:
        for _ in range(12):  # 24 MB in all, never read
            batch = {"messages": [{"body": body}] * 20}
            http.post("/v1/app1/s", json=batch).raise_for_status()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "queuey_open_streams 0.0" in http.get("/__metrics__").text:
                break
            time.sleep(0.5)
        assert "queuey_open_streams 0.0" in http.get("/__metrics__").text
        assert http.get("/v1/app1/s", params={"limit": 1}).status_code == 200
    sock.close()


def test_the_python_client_follows_a_real_stream(tmp_path: Path, serve: type[Server]) -> None:
    """``Queue.stream`` of the client library against a real server: live messages, then
    a reconnection after the server ended the stream, with nothing repeated."""
    server = serve(config(tmp_path, "stream_max_seconds = 1\n")).start()
    with Client(server.url, "app1", KEYS["app1"][0]) as client:
        queue = client.queue("c")
        queue.create()
        first = queue.post("c0")
        got: list[str] = []

        def follow() -> Iterator[None]:
            for message in queue.stream(since=first.message_id):
                got.append(message.body)
                if len(got) == 4:
                    return
                yield None

        follower = threading.Thread(target=lambda: list(follow()), daemon=True)
        follower.start()
        queue.post("c1")
        time.sleep(2.5)  # the server ends the stream after 1 s; the client comes back
        queue.post("c2")
        queue.post("c3")
        follower.join(BOUND + 5)
        assert got == ["c0", "c1", "c2", "c3"]


def test_sigterm_answers_held_reads_as_they_stand_and_ends_streams(
    tmp_path: Path, serve: type[Server]
) -> None:
    server = serve(config(tmp_path)).start()
    httpx.post(f"{server.url}/v1/app1", json={"queue_name": "t"}, headers=APP1).raise_for_status()
    reader = Reader(server.url, "/v1/app1/t/stream", APP1)
    held: list[httpx.Response] = []

    def hold() -> None:
        held.append(
            httpx.get(f"{server.url}/v1/app1/t", params={"wait": "50"}, headers=APP1, timeout=60)
        )

    holder = threading.Thread(target=hold)
    holder.start()
    deadline = time.monotonic() + BOUND
    while "queuey_held_reads 1.0" not in httpx.get(f"{server.url}/__metrics__").text:
        assert time.monotonic() < deadline, "the read was not held"
        time.sleep(0.2)
    began = time.monotonic()
    assert server.process is not None
    server.process.terminate()
    holder.join(BOUND)
    assert [(r.status_code, r.json()["messages"]) for r in held] == [(200, [])]
    assert reader.ended.wait(BOUND) and reader.error is None
    assert server.process.wait(BOUND) == 0
    assert time.monotonic() - began < BOUND  # not the read's 50 s


def test_open_streams_and_held_reads_are_summed_across_workers(
    tmp_path: Path, serve: type[Server]
) -> None:
    server = serve(config(tmp_path), "--workers", "2").start()
    httpx.post(f"{server.url}/v1/app1", json={"queue_name": "w"}, headers=APP1).raise_for_status()
    readers = [Reader(server.url, "/v1/app1/w/stream", APP1) for _ in range(4)]

    def hold() -> None:
        httpx.get(f"{server.url}/v1/app1/w", params={"wait": "30"}, headers=APP1, timeout=60)

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for holder in holders:
        holder.start()
    wanted = ("queuey_open_streams 4.0", "queuey_held_reads 3.0")
    deadline = time.monotonic() + BOUND + 5
    while True:
        text = httpx.get(f"{server.url}/__metrics__").text
        if all(w in text for w in wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert all(w in text for w in wanted), [line for line in text.splitlines() if "held" in line]
    post(server.url, "w", "wake")
    for holder in holders:
        holder.join(BOUND)
    assert all(len(r.wait_for(1)) == 1 for r in readers)


def test_a_held_read_ends_when_its_client_leaves(tmp_path: Path, serve: type[Server]) -> None:
    """A client gone mid-wait releases its held read at once, not after ``wait`` seconds."""
    server = serve(config(tmp_path)).start()
    httpx.post(f"{server.url}/v1/app1", json={"queue_name": "g"}, headers=APP1).raise_for_status()
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        "GET /v1/app1/g?wait=50 HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: {APP1['Authorization']}\r\n\r\n"
    ).encode()
    clients = []
    for _ in range(5):
        sock = socket.create_connection((host, int(port)), timeout=BOUND)
        sock.sendall(request)
        clients.append(sock)

    def held() -> str:
        text = httpx.get(f"{server.url}/__metrics__").text
        return next(line for line in text.splitlines() if line.startswith("queuey_held_reads "))

    deadline = time.monotonic() + BOUND
    while held() != "queuey_held_reads 5.0":
        assert time.monotonic() < deadline, held()
        time.sleep(0.2)
    for sock in clients:
        sock.close()
    deadline = time.monotonic() + BOUND  # the gauge is sampled every second
    while held() != "queuey_held_reads 0.0":
        assert time.monotonic() < deadline, held()
        time.sleep(0.2)
    # The server still answers a held read normally.
    post_later = threading.Timer(0.5, post, (server.url, "g", "late"))
    post_later.start()
    response = httpx.get(
        f"{server.url}/v1/app1/g", params={"wait": "20"}, headers=APP1, timeout=BOUND + 20
    )
    post_later.join()
    assert [m["body"] for m in response.json()["messages"]] == ["late"]
