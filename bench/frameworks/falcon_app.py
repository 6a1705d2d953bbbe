"""Queuey with Falcon 4 (ASGI) as its HTTP layer, written as a Falcon app would be.

A resource with ``on_get`` and ``on_post`` responders on a URI template,
``req.get_header``, ``req.params`` (of a repeated parameter, the last, as
Queuey) and ``req.stream`` for the body, ``resp.data`` for the answer, one
error handler for the error shape, and a middleware for the lifespan.

Falcon joins repeated headers with ","; Queuey joins several Authorization
headers with ";" (SPEC §2), so repeated ones are taken from the ASGI scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import falcon
import falcon.asgi

from bench.frameworks.adapt import MESSAGES, Queuey, read_body
from queuey.api.http import ASGIApp, Message, Request, Response
from queuey.api.observe import ROUTE

LBHEARTBEAT = b'{"status":"ok"}'
App = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]


async def _no_receive() -> Message:
    raise RuntimeError("the body is read through Falcon's stream")


class FalconRequest(Request):
    """What Queuey's endpoints read of a request, read from Falcon's."""

    __slots__ = ("_req",)

    def __init__(self, req: falcon.asgi.Request, params: dict[str, str]) -> None:
        super().__init__(req.scope, _no_receive, [], params)
        self._req = req

    def header(self, name: bytes) -> str | None:
        return self._req.get_header(name.decode("latin-1"))

    def header_list(self, name: bytes) -> list[str]:
        return [v.decode("latin-1") for k, v in self._req.scope["headers"] if k == name]

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] if isinstance(v, list) else v for k, v in self._req.params.items()}

    async def body(self, limit: int) -> bytes:
        return await read_body(self.header(b"content-length"), self._req.stream, limit)


def _respond(resp: falcon.asgi.Response, answer: Response) -> None:
    resp.status = answer.status
    resp.content_type = answer.media_type.decode()
    for name, value in answer.headers:
        resp.append_header(name.decode("latin-1"), value.decode("latin-1"))
    resp.data = answer.body


class Messages:
    """``/v1/{app}/{queue}``: GET reads a range, POST posts."""

    def __init__(self, queuey: Queuey) -> None:
        self.queuey = queuey

    async def _answer(
        self,
        endpoint: Callable[[Request], Awaitable[Response]],
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        params: dict[str, str],
    ) -> None:
        req.scope[ROUTE] = MESSAGES
        _respond(resp, await endpoint(FalconRequest(req, params)))

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str, queue: str
    ) -> None:
        await self._answer(self.queuey.read, req, resp, {"app": app, "queue": queue})

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str, queue: str
    ) -> None:
        await self._answer(self.queuey.post, req, resp, {"app": app, "queue": queue})


class LBHeartbeat:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = LBHEARTBEAT


class Lifespan:
    """Queuey's lifespan (the store, the metrics sampler) on Falcon's lifespan events."""

    def __init__(self, queuey: Queuey) -> None:
        self.queuey = queuey
        self.stack = contextlib.AsyncExitStack()

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.stack.enter_async_context(self.queuey.app.lifespan())

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.stack.aclose()


def create(queuey: Queuey) -> ASGIApp:
    """The Falcon ASGI app, behind Queuey's observer."""

    async def on_error(
        req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception, params: Any
    ) -> None:
        _respond(resp, queuey.error(exc))

    app: App = falcon.asgi.App(middleware=[Lifespan(queuey)])
    app.add_route(MESSAGES, Messages(queuey))
    app.add_route("/__lbheartbeat__", LBHeartbeat())
    # Falcon picks the most specific handler: its own HTTPErrors keep theirs.
    app.add_error_handler(Exception, on_error)
    # Falcon types the ASGI callable more narrowly (a dict scope); it is one all the same.
    return queuey.observed(cast(ASGIApp, app))
