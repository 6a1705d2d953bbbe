"""The bare baseline: the same stack (granian + Starlette + msgspec) answering a constant JSON.

Every Queuey figure in BENCHMARKS.md is a ratio to this app, measured in the same
run with the same load, so the machine's speed and noise mostly cancel out.
"""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = msgspec.json.encode(
    {
        "status": "ok",
        "messages": [
            {"key": "0" * 32, "timestamp": "1795740103.4079008", "partition": 1},
        ],
    }
)


async def constant(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/v1/{app}/{queue}", constant, methods=["GET", "POST"])])
