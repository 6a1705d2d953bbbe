"""ASGI middleware: CORS for browsers.

CORS is written here rather than taken from Starlette because the contract
differs: a disallowed origin must get no CORS headers at all (Starlette's
answers its preflight with a plain-text 400 carrying Allow-Methods), and every
body must be JSON.
"""

from __future__ import annotations

from collections.abc import Iterable

from queuey.api.http import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = b"GET, HEAD, POST, PUT, DELETE"
ALLOW_HEADERS = b"Authorization, Content-Type, X-TTL, X-Partition, X-Idempotency-Key, Last-Event-ID"
#: Response headers a page's script may read (besides the CORS-safelisted ones);
#: WWW-Authenticate tells a page its bearer token was refused (SPEC §8).
EXPOSE_HEADERS = b"X-Request-ID, Retry-After, WWW-Authenticate"
PREFLIGHT_BODY = b'{"status":"ok"}'


class CORSMiddleware:
    """Answer preflights from allowed origins on every path; tag their responses."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.any_origin = "*" in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origins:
            await self.app(scope, receive, send)
            return
        origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is None or not (self.any_origin or origin.decode("latin-1") in self.origins):
            await self.app(scope, receive, send)
            return
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", EXPOSE_HEADERS),
            (b"vary", b"Origin"),
        ]
        if preflight and scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        *cors,
                        (b"access-control-allow-methods", ALLOW_METHODS),
                        (b"access-control-allow-headers", ALLOW_HEADERS),
                        (b"access-control-max-age", b"86400"),
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(PREFLIGHT_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": PREFLIGHT_BODY})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
