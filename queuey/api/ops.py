"""Operations endpoints: heartbeats, version, and the OpenAPI document."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queuey import __version__
from queuey.api.responses import JSON, OK, error_response
from queuey.core.errors import StorageUnavailable
from queuey.storage.base import StorageUnavailable as StorageDown


@cache
def openapi_document() -> dict[str, Any]:
    """The hand-written OpenAPI 3.1 document shipped beside this module."""
    text = resources.files("queuey.api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    document["info"]["version"] = __version__
    return document


async def heartbeat(request: Request) -> Response:
    try:
        await request.app.state.service.storage.ping()
    except StorageDown as exc:
        return error_response(StorageUnavailable(f"The message store does not answer: {exc}"))
    return JSON(OK)


async def lbheartbeat(request: Request) -> Response:
    return JSON(OK)


async def version(request: Request) -> Response:
    return JSON({"status": "ok", "name": "queuey", "version": __version__})


async def openapi(request: Request) -> Response:
    return JSON(openapi_document())


routes = [
    Route("/__heartbeat__", heartbeat, methods=["GET"]),
    Route("/__lbheartbeat__", lbheartbeat, methods=["GET"]),
    Route("/__version__", version, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
