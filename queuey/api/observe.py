"""Watching every request (SPEC §9): its request id, its access-log line, its metrics.

:class:`Observer` wraps the whole app, CORS included, so that every answer —
errors, 404s and preflights too — carries ``X-Request-ID`` and is logged and
counted once. The endpoints leave what only they know in the ASGI scope: the
route template (``ROUTE``) and the application the request was authenticated
as (``CALLER``). A line never holds a key, a token or a query string: it has
the route template, not the path.

A client that goes away before its answer is complete is logged (and counted)
once, with status 499 as nginx does, and nothing else is logged about it.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import sys
import time
from collections.abc import Callable

import msgspec

from queuey.api.http import BROKEN_OFF, ASGIApp, Message, Receive, Scope, Send
from queuey.api.metrics import Metrics

#: Scope keys the app fills in for the log: the route template, the caller's application.
ROUTE = "queuey.route"
CALLER = "queuey.app"
#: The status logged for a request whose client went away before the answer was sent.
GONE = 499
#: A request id a client may choose: 1 to 128 visible ASCII characters.
VALID_ID = re.compile(rb"[\x21-\x7e]{1,128}")

_encode = msgspec.json.Encoder().encode


#: Ids made here: 20 random hex digits per process, then a counter (32 hex digits in all);
#: unique without a random draw per request. A forked worker draws its own prefix.
_PREFIX = secrets.token_hex(10).encode()
_serial = itertools.count(1)


def _new_prefix() -> None:
    global _PREFIX  # noqa: PLW0603 - one per process
    _PREFIX = secrets.token_hex(10).encode()


os.register_at_fork(after_in_child=_new_prefix)


def request_id(scope: Scope) -> bytes:
    """The client's ``X-Request-ID`` if it is valid, else a fresh one (32 hex digits)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if VALID_ID.fullmatch(value):
                return bytes(value)
            break
    return b"%s%012x" % (_PREFIX, next(_serial) & 0xFFFFFFFFFFFF)


class AccessLog:
    """Writes one line per request to standard error (``text`` or ``json``).

    Straight to ``sys.stderr`` (line-buffered: one write a line) rather than
    through ``logging``, whose record, caller lookup and handler lock cost
    more than the rest of the line's work together.
    """

    def __init__(self, log_format: str = "text") -> None:
        self.json = log_format == "json"
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # format the date once a second, not once a request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(
        self, started: float, method: str, route: str, status: int, seconds: float, app: str,
        rid: str,
    ) -> None:  # fmt: skip
        when = self._time(started)
        if self.json:
            line = _encode(
                {
                    "time": when,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "app": app,
                    "request_id": rid,
                }
            ).decode()
        else:
            line = (
                f"{when} method={method} route={route} status={status}"
                f" duration_ms={seconds * 1000:.3f} app={app} request_id={rid}"
            )
        sys.stderr.write(line + "\n")


class Observer:
    """The outermost ASGI layer: request ids, the access log and request metrics."""

    def __init__(
        self,
        app: ASGIApp,
        route_of: Callable[[Scope], str],
        log: AccessLog | None,
        metrics: Metrics | None,
    ) -> None:
        """``route_of(scope)``: the template of a request the app did not route (a preflight)."""
        self.app = app
        self.route_of = route_of
        self.log = log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started_wall, started = time.time(), time.perf_counter()
        rid = request_id(scope)
        status = GONE
        if self.metrics is not None:
            self.metrics.active += 1

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
                sending = message["status"]
            try:
                await send(message)
            except Exception as exc:  # the connection is gone: granian refuses the message
                status = GONE
                raise _Gone() from exc
            if message["type"] == "http.response.start":
                status = sending

        try:
            await self.app(scope, receive, send_with_id)
        except _Gone:
            status = GONE
        finally:
            if scope.get(BROKEN_OFF):  # answered in case it is still there; most are gone
                status = GONE
            seconds = time.perf_counter() - started
            route = scope.get(ROUTE) or self.route_of(scope)
            if self.metrics is not None:
                self.metrics.active -= 1
                self.metrics.request(route, scope["method"], status, seconds)
            if self.log is not None:
                method: str = scope["method"]
                app = scope.get(CALLER) or "-"
                self.log.write(
                    started_wall, method[:20], route, status, seconds, app, rid.decode("ascii")
                )


class _Gone(Exception):
    """Sending failed: the client went away; nothing more to send or to log."""
