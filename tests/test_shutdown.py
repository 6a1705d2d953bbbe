"""Graceful shutdown (SPEC §9): SIGTERM to a real ``queuey serve``.

The workers stop accepting, requests under way finish (bodies still
arriving included) up to ``[server] shutdown_seconds``, held claims answer
as they stand at once, the writer runs what it was given, and the process
exits 0; nothing acknowledged is lost. A request that outlasts
``shutdown_seconds`` does not hold the stop: its worker is killed.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from http.client import HTTPConnection, HTTPException
from pathlib import Path

import httpx
import pytest

from tests.fault_support import (
    AUTH,
    Queuey,
    connect,
    parse_response,
    read_until_closed,
    troubles,
)

POST_HEAD = "POST /v1/app1/{queue} HTTP/1.1\r\nHost: q\r\nAuthorization: Application key1\r\n"


def test_sigterm_answers_held_claims_at_once_and_exits_0(tmp_path: Path) -> None:
    server = Queuey(tmp_path).start()
    try:
        with server.client() as http:
            assert http.post("/v1/app1", data={"queue_name": "held"}).status_code == 201
            assert http.put("/v1/app1/held/groups/g", json={}).status_code == 201
        answers: list[httpx.Response] = []

        def claim() -> None:
            with server.client(timeout=60) as http:
                answers.append(http.post("/v1/app1/held/groups/g/claim", json={"wait": 50}))

        claims = [threading.Thread(target=claim) for _ in range(3)]
        for thread in claims:
            thread.start()
        time.sleep(0.5)  # the claims are waiting
        began = time.monotonic()
        server.terminate()
        for thread in claims:
            thread.join(10)
        assert [(a.status_code, a.json()["messages"]) for a in answers] == [(200, [])] * 3
        assert server.wait(10) == 0
        assert time.monotonic() - began < 5  # not the claims' 50 s, nor shutdown_seconds
    finally:
        server.stop()
    assert troubles(server.output()) == [], server.output()


def test_a_body_still_arriving_at_sigterm_is_stored(tmp_path: Path) -> None:
    server = Queuey(tmp_path).start()
    try:
        with server.client() as http:
            assert http.post("/v1/app1", data={"queue_name": "late"}).status_code == 201
        with connect(server.port) as sock:
            head = POST_HEAD.format(queue="late").encode()
            sock.sendall(head + b"Content-Length: 10\r\n\r\nhalf ")
            time.sleep(0.3)
            server.terminate()
            time.sleep(0.5)  # shutting down, the body still coming
            sock.sendall(b"later")
            raw, _ = read_until_closed(sock)
        status, _, body = parse_response(raw)
        assert status == 201, raw
        key = json.loads(body)["messages"][0]["key"]
        assert server.wait(10) == 0
        with server.start().client() as http:
            assert http.get(f"/v1/app1/late/{key}").json()["messages"][0]["body"] == "half later"
    finally:
        server.stop()


def test_a_request_that_outlasts_shutdown_seconds_does_not_hold_the_stop(tmp_path: Path) -> None:
    server = Queuey(tmp_path, server={"shutdown_seconds": 2, "read_timeout": 60}).start()
    try:
        with server.client() as http:
            assert http.post("/v1/app1", data={"queue_name": "x"}).status_code == 201
        with connect(server.port) as sock:
            sock.sendall(POST_HEAD.format(queue="x").encode() + b"Content-Length: 10\r\n\r\n")
            time.sleep(0.3)
            began = time.monotonic()
            server.terminate()
            assert server.wait(10) == 0
            took = time.monotonic() - began
            assert read_until_closed(sock) == (b"", "closed")
        assert 1.5 < took < 5
    finally:
        server.stop()
    assert "refused to gracefully stop" in server.output()


@pytest.mark.slow
def test_sigterm_under_load_answers_every_request_and_loses_no_201(tmp_path: Path) -> None:
    """Eight clients post to a strong queue on keep-alive connections; SIGTERM mid-load.

    Every request sent before the signal gets an answer, and it is a 201.
    Requests sent after it may find the connection closed or refused (the
    listener is closing): those are counted apart. After a restart every 201
    is there.
    """
    server = Queuey(tmp_path, workers=2).start()
    with server.client() as http:
        assert http.post("/v1/app1", data={"queue_name": "load"}).status_code == 201
    sent_at_signal: list[float] = []
    outcomes: list[tuple[float, str, str | None]] = []  # (sent, outcome, message id)
    lock = threading.Lock()
    counter = itertools.count()
    give_up = time.monotonic() + 60  # ends at the first refused connection, or then

    def client() -> None:
        conn: HTTPConnection | None = None
        while True:
            if conn is None:
                conn = server.connection(timeout=30)
            body = f"m{next(counter)}"
            sent = time.monotonic()
            try:
                conn.request("POST", "/v1/app1/load", body=body, headers=AUTH)
                # Sent once its bytes are written: a thread descheduled between taking the
                # time and writing (a loaded machine) would count a request sent after the
                # signal as sent before it.
                sent = time.monotonic()
                answer = conn.getresponse()
                data = answer.read()
                key = json.loads(data)["messages"][0]["key"] if answer.status == 201 else None
                outcome = str(answer.status)
                closing = answer.getheader("connection") == "close"
            except (OSError, HTTPException) as exc:
                outcome, key, closing = type(exc).__name__, None, True
            if closing:
                conn.close()
                conn = None
            with lock:
                outcomes.append((sent, outcome, key))
            if outcome == "ConnectionRefusedError" or time.monotonic() > give_up:
                return

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        sent_at_signal.append(time.monotonic())
        server.terminate()
        for thread in threads:
            thread.join(30)
        assert server.wait(20) == 0
    finally:
        server.stop()
    cut = sent_at_signal[0]
    before = Counter(outcome for sent, outcome, _ in outcomes if sent < cut)
    after = Counter(outcome for sent, outcome, _ in outcomes if sent >= cut)
    assert set(before) == {"201"}, (before, after)
    assert before["201"] > 100, before
    gone = {"ConnectionRefusedError", "ConnectionResetError", "BrokenPipeError"}
    assert set(after) <= {"201", "RemoteDisconnected", *gone}, after
    acknowledged = [key for _, outcome, key in outcomes if outcome == "201" and key]
    with server.start().client() as http:
        found: set[str] = set()
        for start in range(0, len(acknowledged), 100):
            ids = ",".join(acknowledged[start : start + 100])
            found |= {m["message_id"] for m in http.get(f"/v1/app1/load/{ids}").json()["messages"]}
    server.stop()
    assert found == set(acknowledged), f"{len(set(acknowledged) - found)} acknowledged lost"
    assert troubles(server.output()) == [], server.output()
