"""The bare baseline: the same stack (granian + Starlette) answering a constant JSON.

Every Queuey figure in BENCHMARKS.md is compared with this app, measured in the
same run with the same load, so the machine's speed and noise mostly cancel
out. It is served exactly as ``queuey serve`` serves Queuey (granian's ASGI
interface, the same Granian arguments, one worker); a POST body is read first,
as Queuey reads one, so POSTs compare too.

    python -m bench.baseline_app --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: Shaped like Queuey's answer to a POST of one message.
ANSWER = msgspec.json.encode(
    {
        "status": "ok",
        "messages": [{"key": "0" * 32, "timestamp": "1795740103.4079008", "partition": 1}],
    }
)


async def constant(request: Request) -> Response:
    """Read any request body, then answer the same small JSON document."""
    await request.body()
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/{path:path}", constant, methods=["GET", "POST"])])


def main() -> None:
    """Serve ``app`` with granian as ``queuey serve`` serves Queuey (see queuey/cli.py)."""
    from granian import Granian
    from granian.constants import Interfaces

    parser = argparse.ArgumentParser(description="The bench's bare baseline server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    Granian(
        "bench.baseline_app:app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
