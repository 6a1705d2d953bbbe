"""Queuey with Starlette 1.10 as its HTTP layer, written as a Starlette app would be.

One route for GET and POST of ``/v1/{app}/{queue}`` with its path parameters,
``request.headers``, ``request.query_params`` (of a repeated parameter, the
last, as Queuey) and ``request.stream()`` for the body, a Starlette
``Response``, exception handlers for the error shape, and the lifespan.
Trailing slashes are not redirected: a redirect would not be JSON.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette import requests, responses
from starlette.applications import Starlette
from starlette.routing import Route

from bench.frameworks.adapt import MESSAGES, Queuey, read_body
from queuey.api.http import ASGIApp, Request, Response
from queuey.api.observe import ROUTE
from queuey.core.errors import QueueyError
from queuey.storage.base import StorageError

LBHEARTBEAT = b'{"status":"ok"}'


class StarletteRequest(Request):
    """What Queuey's endpoints read of a request, read from Starlette's."""

    __slots__ = ("_request",)

    def __init__(self, request: requests.Request) -> None:
        super().__init__(request.scope, request.receive, [], request.path_params)
        self._request = request

    def header(self, name: bytes) -> str | None:
        return self._request.headers.get(name.decode("latin-1"))

    def header_list(self, name: bytes) -> list[str]:
        return self._request.headers.getlist(name.decode("latin-1"))

    @property
    def query(self) -> dict[str, str]:
        return dict(self._request.query_params)

    async def body(self, limit: int) -> bytes:
        return await read_body(self.header(b"content-length"), self._request.stream(), limit)


def _response(answer: Response) -> responses.Response:
    response = responses.Response(answer.body, answer.status, media_type=answer.media_type.decode())
    response.raw_headers.extend(answer.headers)
    return response


def create(queuey: Queuey) -> ASGIApp:
    """The Starlette app, behind Queuey's observer; its lifespan is Queuey's."""

    async def messages(request: requests.Request) -> responses.Response:
        request.scope[ROUTE] = MESSAGES
        endpoint = queuey.post if request.method == "POST" else queuey.read
        return _response(await endpoint(StarletteRequest(request)))

    async def lbheartbeat(request: requests.Request) -> responses.Response:
        return responses.Response(LBHEARTBEAT, media_type="application/json")

    async def on_error(request: requests.Request, exc: Exception) -> responses.Response:
        return _response(queuey.error(exc))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with queuey.app.lifespan():
            yield

    app = Starlette(
        routes=[
            # One route for both methods: a POST is not first refused by a GET route.
            Route(MESSAGES, messages, methods=["GET", "POST"]),
            Route("/__lbheartbeat__", lbheartbeat, methods=["GET"]),
        ],
        # Expected errors by class (Starlette's ExceptionMiddleware); Exception, for
        # bugs, is handled by its ServerErrorMiddleware (a JSON 500, then re-raised).
        exception_handlers={
            QueueyError: on_error,
            StorageError: on_error,
            Exception: on_error,
        },
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    return queuey.observed(app)
