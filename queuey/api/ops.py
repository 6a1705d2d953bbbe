"""Operations endpoints: heartbeats, version, the OpenAPI document, and the metrics."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from queuey import __version__
from queuey.api.clients import ClientAddress, Networks
from queuey.api.http import OK, Request, Response, json_response
from queuey.api.metrics import Metrics
from queuey.api.routing import Route, route
from queuey.config import DEFAULTS
from queuey.core.errors import AccessDenied
from queuey.core.service import QueueService


@cache
def openapi_document() -> dict[str, Any]:
    """The hand-written OpenAPI 3.1 document shipped beside this module."""
    text = resources.files("queuey.api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    document["info"]["version"] = __version__
    return document


def routes(
    service: QueueService,
    metrics: Metrics | None = None,
    client_address: ClientAddress | None = None,
    metrics_allow: Iterable[str] = DEFAULTS["metrics_allow"],
) -> list[Route]:
    """The operations routes; ``/__metrics__`` with ``metrics``, for ``metrics_allow`` only."""

    async def heartbeat(request: Request) -> Response:
        await service.ping()  # 503 StorageUnavailable when the store does not answer
        return json_response(OK)

    async def lbheartbeat(request: Request) -> Response:
        return json_response(OK)

    async def version(request: Request) -> Response:
        return json_response({"status": "ok", "name": "queuey", "version": __version__})

    openapi_body = json_response(openapi_document()).body

    async def openapi(request: Request) -> Response:
        return Response(openapi_body)

    found = [
        route("/__heartbeat__", get=heartbeat),
        route("/__lbheartbeat__", get=lbheartbeat),
        route("/__version__", get=version),
        route("/openapi.json", get=openapi),
    ]
    if metrics is None:
        return found
    allow = Networks(metrics_allow)
    address = client_address or ClientAddress()

    async def scrape(request: Request) -> Response:
        if address(request.scope) not in allow:
            raise AccessDenied()
        waiters = service.messages.waiters  # this process's, current
        metrics.held.set(waiters.count("read") + waiters.count("claim"))
        metrics.streams.set(waiters.count("stream"))
        return Response(metrics.render(), media_type=metrics.content_type)

    return [*found, route("/__metrics__", get=scrape)]
