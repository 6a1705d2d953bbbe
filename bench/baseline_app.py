"""The bare baselines: granian answering a constant JSON, with and without a framework.

Every Queuey figure of the single-server table is compared with these, measured
in the same interleaved rounds with the same load, so the machine's speed and
noise mostly cancel out:

- ``starlette``: granian + Starlette (``app``), what an app written on the
  framework Queuey once ran on serves at best;
- ``asgi``: a plain ASGI callable on granian, no framework
  (bench/frameworks/bare.py): the limit of the server under Queuey, which is
  served over ASGI too;
- ``rsgi``: the same on granian's own RSGI interface (``rsgi_app``), for
  information: what granian serves when ASGI's message dictionaries are left out.

Each reads any request body first, as Queuey reads one, so POSTs compare too,
and answers the same small JSON document, shaped like Queuey's answer to a POST
of one message. They are served as ``queuey serve`` serves Queuey
(queuey/cli.py): on a socket it binds itself (``listen``, ``granian_on``) with
the same Granian arguments (backlog, backpressure, no access log, HTTP/1
header timeout, kill timeout), one worker.

    python -m bench.baseline_app --app asgi --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.frameworks.bare import app as asgi_app

#: Shaped like Queuey's answer to a POST of one message.
ANSWER = msgspec.json.encode(
    {
        "status": "ok",
        "messages": [{"key": "0" * 32, "timestamp": "1795740103.4079008", "partition": 1}],
    }
)
#: The apps by ``--app``: (granian import target, interface).
APPS = {
    "starlette": ("bench.baseline_app:app", "asgi"),
    "asgi": ("bench.baseline_app:asgi_app", "asgi"),
    "rsgi": ("bench.baseline_app:rsgi_app", "rsgi"),
}
_RSGI_HEADERS = [("content-type", "application/json")]


async def constant(request: Request) -> Response:
    """Read any request body, then answer the same small JSON document."""
    await request.body()
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/{path:path}", constant, methods=["GET", "POST"])])

__all__ = ["ANSWER", "APPS", "app", "asgi_app", "rsgi_app"]


async def rsgi_app(scope: Any, protocol: Any) -> None:
    """RSGI: read any request body, then answer the same document (granian adds its length)."""
    await protocol()
    protocol.response_bytes(200, _RSGI_HEADERS, ANSWER)


def main() -> None:
    """Serve one of ``APPS`` with granian as ``queuey serve`` serves Queuey."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    from queuey.cli import BACKLOG, BACKPRESSURE, granian_on, listen
    from queuey.config import Settings

    parser = argparse.ArgumentParser(description="The bench's bare baseline servers.")
    parser.add_argument("--app", choices=sorted(APPS), default="starlette")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    target, interface = APPS[args.app]
    settings = Settings(host=args.host, port=args.port, workers=args.workers)
    granian_on(listen(settings))(
        target,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI if interface == "rsgi" else Interfaces.ASGI,
        workers=settings.workers,
        backlog=BACKLOG,
        backpressure=BACKPRESSURE,
        log_access=False,
        http1_settings=HTTP1Settings(header_read_timeout=max(1, int(settings.read_timeout * 1000))),
        workers_kill_timeout=settings.shutdown_seconds,
    ).serve()


if __name__ == "__main__":
    main()
