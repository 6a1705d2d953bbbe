"""Slow and broken clients (SPEC §9) against a real ``queuey serve``, over raw sockets.

``[server] read_timeout`` is 1 s here. A body that stops arriving is answered
408 ``RequestTimeout`` in JSON and the connection closed; headers that stop
arriving get the connection closed by granian without an answer; a body
that breaks off (the client went away, or a malformed chunk: granian tells
the app the same for both) is answered 400 in case the client is still there
and logged as gone (499), with nothing else in the log. What granian refuses
before Queuey sees it is pinned here too, with the limits docs/operations.md
gives.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from queuey.api.http import Message, ReadTimeouts, Request
from queuey.core.errors import RequestTimeout
from tests.fault_support import (
    AUTH,
    Queuey,
    connect,
    exchange,
    parse_response,
    read_until_closed,
    troubles,
)

READ_TIMEOUT = 1.0
POST = b"POST /v1/app1/slow HTTP/1.1\r\nHost: q\r\nAuthorization: Application key1\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queuey]:
    queuey = Queuey(tmp_path_factory.mktemp("slow"), server={"read_timeout": READ_TIMEOUT})
    queuey.start()
    try:
        with queuey.client() as http:
            assert http.post("/v1/app1", data={"queue_name": "slow"}).status_code == 201
        yield queuey
    finally:
        queuey.stop()


def error_of(raw: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
    status, headers, body = parse_response(raw)
    assert headers["content-type"] == "application/json", raw
    document = json.loads(body)
    assert document["status"] == "error"
    return status, headers, document["error_msg"]


def test_half_a_body_then_nothing_is_408_and_the_connection_closed(server: Queuey) -> None:
    with connect(server.port) as sock:
        sock.sendall(POST + b"Content-Length: 100\r\n\r\nhalf of it")
        began = time.monotonic()
        raw, end = read_until_closed(sock)
        took = time.monotonic() - began
    status, headers, errors = error_of(raw)
    assert (status, list(errors), end) == (408, ["RequestTimeout"], "closed")
    assert headers["connection"] == "close"
    assert READ_TIMEOUT - 0.1 < took < READ_TIMEOUT + 2


def test_a_chunked_body_that_stops_is_408_too(server: Queuey) -> None:
    raw, end = exchange(server.port, POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    status, _, errors = error_of(raw)
    assert (status, list(errors), end) == (408, ["RequestTimeout"], "closed")


def test_a_slow_body_that_keeps_coming_is_not_cut(server: Queuey) -> None:
    """The timeout is for a body that stops, not for a slow one: each part resets it."""
    with connect(server.port) as sock:
        sock.sendall(POST + b"Content-Length: 8\r\n\r\n")
        for part in (b"sl", b"ow", b"ly", b"!!"):
            time.sleep(READ_TIMEOUT * 0.6)
            sock.sendall(part)
        raw, _ = read_until_closed(sock)  # closed once idle for read_timeout
    status, _, body = parse_response(raw)
    assert status == 201, raw
    with server.client() as http:
        key = json.loads(body)["messages"][0]["key"]
        assert http.get(f"/v1/app1/slow/{key}").json()["messages"][0]["body"] == "slowly!!"


def test_headers_that_stop_arriving_get_the_connection_closed(server: Queuey) -> None:
    """granian (hyper's header_read_timeout, set to read_timeout) closes it; no answer."""
    with connect(server.port) as sock:
        sock.sendall(b"GET /__heartbeat__ HTTP/1.1\r\nHost: q\r\nX-Slow: ")
        began = time.monotonic()
        raw, end = read_until_closed(sock)
        took = time.monotonic() - began
    assert (raw, end) == (b"", "closed")
    assert READ_TIMEOUT - 0.1 < took < READ_TIMEOUT + 2


def test_an_idle_keep_alive_connection_is_closed_after_read_timeout(server: Queuey) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: q\r\n\r\n")
        began = time.monotonic()
        raw, end = read_until_closed(sock)
        took = time.monotonic() - began
    assert parse_response(raw)[0] == 200 and end == "closed"
    assert READ_TIMEOUT - 0.1 < took < READ_TIMEOUT + 2


@pytest.mark.parametrize(
    "framing",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",  # not a hex size
        b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n",  # a size past 64 bits
        b"3\r\nabcXX\r\n0\r\n\r\n",  # a chunk longer than its size
        b"-3\r\nabc\r\n0\r\n\r\n",  # a negative size
        b"3 junk\r\nabc\r\n0\r\n\r\n",  # junk after the size
    ],
)
def test_a_malformed_chunk_is_400_json_never_500(server: Queuey, framing: bytes) -> None:
    raw, end = exchange(server.port, POST + b"Transfer-Encoding: chunked\r\n\r\n" + framing)
    status, headers, errors = error_of(raw)
    assert (status, list(errors), end) == (400, ["body"], "closed")
    assert headers["connection"] == "close"
    assert "x-request-id" in headers


def test_clients_gone_mid_request_leave_no_warning_and_the_server_serves_on(
    server: Queuey,
) -> None:
    before = server.output()
    ids = [f"gone-{n}" for n in range(4)]
    head = POST.replace(b"\r\n", b"\r\nX-Request-ID: %s\r\n", 1)
    # Closed mid-body (Content-Length), reset mid-body (chunked), closed before any body.
    for rid, tail, reset in [
        (ids[0], b"Content-Length: 1000\r\n\r\nonly part", False),
        (ids[1], b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", True),
        (ids[2], b"Content-Length: 10\r\n\r\n", False),
        (ids[3], b"Content-Length: 1000\r\n\r\n" + b"x" * 500, True),
    ]:
        sock = connect(server.port)
        sock.sendall(head % rid.encode() + tail)
        time.sleep(0.2)
        if reset:  # RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        sock.close()
    # A client gone during the headers: closed by the server's read timeout later, silently.
    with connect(server.port) as sock:
        sock.sendall(b"GET /__heartbeat__ HTTP/1.1\r\nHost")
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        assert http.get("/__heartbeat__").status_code == 200
    time.sleep(READ_TIMEOUT + 0.5)
    new = server.output()[len(before) :]
    assert troubles(new) == [], new
    for rid in ids:
        (line,) = [line for line in new.splitlines() if f"request_id={rid}" in line]
        assert "status=499" in line and "route=/v1/{app}/{queue}" in line


async def test_a_stalled_read_times_out_and_other_cancellations_pass_through() -> None:
    """In-process: the sweep ends a read that waits too long; a cancel of its own is kept."""
    timeouts = ReadTimeouts(0.2)

    async def nothing() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("never")

    def request() -> Request:
        return Request({"method": "POST", "headers": []}, nothing, [], {}, timeouts)

    began = time.monotonic()
    with pytest.raises(RequestTimeout):
        await request().body(100)
    assert 0.2 <= time.monotonic() - began < 0.5
    reading = asyncio.create_task(request().body(100))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await asyncio.sleep(0.3)  # the sweep finds nothing left to end
    assert not timeouts._waiting and not timeouts._expired


# -- what granian answers itself (no JSON, no request id, no access-log line) ----------

HOST = b"Host: q\r\n"
MANY = b"".join(b"X-%d: v\r\n" % i for i in range(100))


@pytest.mark.parametrize(
    ("name", "request_bytes", "status"),
    [
        ("bad request line", b"GARBAGE\r\n\r\n", 400),
        ("unknown HTTP version", b"GET / HTTP/9.9\r\n\r\n", 400),
        ("space in the target", b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n", 400),
        ("header line without colon", b"GET / HTTP/1.1\r\n" + HOST + b"Broken\r\n\r\n", 400),
        ("two Content-Lengths", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        ("Content-Length not a number", POST + b"Content-Length: abc\r\n\r\nabc", 400),
        ("Transfer-Encoding not chunked", POST + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
        ("101 header fields", b"GET / HTTP/1.1\r\n" + HOST + MANY + b"\r\n", 431),
        ("a 1 MB header block", b"GET / HTTP/1.1\r\n" + HOST + b"X: " + b"a" * 2**20 + b"\r\n\r\n",
         431),
        ("a 65,535-byte target", b"GET /?" + b"a" * 65533 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
    ],
)  # fmt: skip
def test_what_granian_refuses_before_queuey_sees_it(
    server: Queuey, name: str, request_bytes: bytes, status: int
) -> None:
    raw, end = exchange(server.port, request_bytes)
    got, headers, body = parse_response(raw)
    assert (got, body, end) == (status, b"", "closed"), name
    assert "x-request-id" not in headers  # never reached Queuey


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("100 header fields", b"GET /__lbheartbeat__ HTTP/1.1\r\n" + HOST
         + b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"\r\n"),
        ("a 400 kB header block", b"GET /__lbheartbeat__ HTTP/1.1\r\n" + HOST
         + b"X: " + b"a" * 400_000 + b"\r\n\r\n"),
        ("a 65,534-byte target", b"GET /__lbheartbeat__?" + b"a" * 65513 + b" HTTP/1.1\r\n"
         + HOST + b"\r\n"),
    ],
)  # fmt: skip
def test_just_within_granians_limits_queuey_answers(
    server: Queuey, name: str, request_bytes: bytes
) -> None:
    with connect(server.port) as sock:
        sock.sendall(request_bytes)
        raw = sock.recv(65536)
    assert parse_response(raw)[0] == 200, name


def test_the_log_has_no_trouble_at_all(server: Queuey, tmp_path: Path) -> None:
    """After every case above (this runs last in the module)."""
    assert troubles(server.output()) == [], server.output()
