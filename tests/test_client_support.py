"""Helpers of the client tests (no tests here): servers to talk to, and a stand-in that misbehaves.

:class:`Standin` is a small HTTP/1.1 server on a free port. Each request it
gets takes the next step of its ``plan`` (default ``"forward"``: pass it on to
the real ``queuey serve`` behind it): ``("answer", status, headers, body)``,
``"drop"`` (pass it on, then close the connection without answering: the
server did the work, the client never hears of it), ``"refuse"`` (close
without passing it on), ``"hang"`` (answer nothing until the test ends), or
``("stream", chunks)`` (play a recorded event stream, then close). It records
every request and counts connections, so tests can see retries, idempotency
keys, ``Last-Event-ID`` and connection reuse.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.conftest import Server, write_config

KEY = "key1"
OTHER_KEY = "key2"
#: app3's key: its server configuration allows it one request per second.
LIMITED_KEY = "key3a"

#: Headers not passed between the client and the server behind the stand-in.
HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}


def configure(directory: Path) -> Path:
    """A server configuration on SQLite in ``directory``; app3 is limited to 1 request/s."""
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory / "queuey.toml", f"sqlite:///{directory / 'q.db'}", 1)
    with config.open("a", encoding="utf-8") as handle:
        handle.write("\n[applications.app3]\nrequests_per_second = 1\nburst = 1\n")
    return config


def unique(prefix: str = "q") -> str:
    """A fresh queue (or group) name."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_until(condition: Any, timeout: float = 15.0) -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def restart(server: Server) -> None:
    """Stop the server (SIGTERM) and start it again on the same port and database."""
    server.stop()
    server.start()


@dataclass(frozen=True)
class Seen:
    """A request as the stand-in received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class Standin:
    """See the module's docstring."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self.plan: list[Any] = []
        self.seen: list[Seen] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._ending = threading.Event()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm
                # and the peer's delayed ACK add 40 ms to every answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with standin._lock:
                    standin.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._serve(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._ending.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Standin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.seen.append(Seen(handler.command, handler.path, headers, body))
            step = self.plan.pop(0) if self.plan else "forward"
        if step in ("refuse", "hang"):
            if step == "hang":
                self._ending.wait(30)
            handler.close_connection = True
            return
        if isinstance(step, tuple) and step[0] == "answer":
            _, status, extra, payload = step
            self._write(handler, status, extra, payload)
            return
        if isinstance(step, tuple) and step[0] == "stream":
            self._stream(handler, step[1])
            return
        assert self.upstream is not None, "nothing behind the stand-in to forward to"
        passed = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
        answer = httpx.request(
            handler.command, self.upstream + handler.path, headers=passed, content=body
        )
        if step == "drop":
            handler.close_connection = True
            return
        back = {k: v for k, v in answer.headers.items() if k not in HOP_BY_HOP}
        self._write(handler, answer.status_code, back, answer.content)

    @staticmethod
    def _write(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any
    ) -> None:
        payload = body if isinstance(body, bytes) else msgspec.json.encode(body)
        handler.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("date", "server"):
                handler.send_header(name, value)
        if not any(name.lower() == "content-type" for name in headers):
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def _stream(handler: BaseHTTPRequestHandler, chunks: list[bytes]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            for chunk in chunks:
                handler.wfile.write(chunk)
                handler.wfile.flush()
                time.sleep(0.01)
        except OSError:
            pass  # the client had what it wanted and hung up


def error_body(key: str, message: str) -> dict[str, Any]:
    return {"status": "error", "error_msg": {key: message}}
