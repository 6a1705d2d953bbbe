"""The ASGI application: lifespan, routing, the one error handler; wired to settings.

``QueueyApp`` is a plain ASGI callable (so httpx's ASGI transport drives it
in-process in tests, and granian serves it): it finds the route of the path's
segments, calls the endpoint, and turns every error into the JSON error
shape. Only here does the HTTP layer touch storage: to open the backend the
settings name and hand it to core.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from queuey.api import ops
from queuey.api.groups import GroupRoutes
from queuey.api.http import (
    ASGIApp,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    path_segments,
)
from queuey.api.middleware import CORSMiddleware
from queuey.api.routes import V1
from queuey.api.routing import Router
from queuey.config import Settings, load
from queuey.core.auth import ApplicationKeys, Authentication
from queuey.core.errors import MethodNotAllowed, NotFound, QueueyError, from_storage
from queuey.core.messages import Limits
from queuey.core.service import QueueService
from queuey.storage import Storage, open_storage

log = logging.getLogger(__name__)


def error_response(error: QueueyError) -> Response:
    allow = error.allow if isinstance(error, MethodNotAllowed) else None
    headers = [(b"allow", allow.encode())] if allow else []
    body = {"status": "error", "error_msg": dict(error.fields), **error.extra}
    return json_response(body, error.status, headers)


def as_queuey_error(exc: Exception) -> QueueyError:
    """Anything raised while answering, as an error of the catalog (a bug: a JSON 500)."""
    if isinstance(exc, QueueyError):
        return exc
    error = from_storage(exc)
    if error is not None:
        return error
    log.error("unexpected error", exc_info=exc)
    error = QueueyError("The server failed to answer this request.")
    error.status = 500
    return error


class QueueyApp:
    """Queuey as an ASGI app; the storage starts and stops with the lifespan."""

    def __init__(
        self, service: QueueService, router: Router, cors_origins: tuple[str, ...] = ()
    ) -> None:
        self.service = service
        self.router = router
        self.routes = router.routes
        self._handle: ASGIApp = self._http
        if cors_origins:
            self._handle = CORSMiddleware(self._http, cors_origins)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Start the store; close it at the end (tests enter this themselves)."""
        await self.service.storage.start()
        try:
            yield
        finally:
            await self.service.storage.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        segments = path_segments(scope)
        found = self.router.find(segments)
        try:
            if found is None:
                raise NotFound()
            route, params = found
            endpoint = route.endpoints.get(scope["method"])
            if endpoint is None:
                raise MethodNotAllowed(allow=", ".join(sorted(route.methods)))
            response = await endpoint(Request(scope, receive, segments, params))
        except ClientDisconnected:
            log.debug("client went away during %s %s", scope["method"], scope["path"])
            return
        except Exception as exc:  # noqa: BLE001 - the one handler: every error is JSON
            response = error_response(as_queuey_error(exc))
        await response.send(send, head=scope["method"] == "HEAD")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        stack = contextlib.AsyncExitStack()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await stack.enter_async_context(self.lifespan())
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stack.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def storage_for(settings: Settings) -> Storage:
    return open_storage(
        settings.storage_url,
        settle={
            "weak": settings.storage_settle_weak,
            "strong": settings.storage_settle_strong,
            "very_strong": settings.storage_settle_very_strong,
        },
        create_schema=settings.storage_create_schema,
        purge_interval=settings.storage_purge_interval,
        readers=settings.storage_readers,
        busy_timeout=settings.storage_busy_timeout,
        purge_batch=settings.storage_purge_batch,
        idempotency_window=settings.idempotency_window,
    )


def create_app(settings: Settings, storage: Storage | None = None) -> QueueyApp:
    """Queuey for these settings, as an ASGI app (CORS outermost)."""
    store = storage if storage is not None else storage_for(settings)
    service = QueueService(
        store,
        Limits(settings.max_message_bytes, settings.max_request_bytes),
        cache_seconds=settings.queue_cache_seconds,
        cache_size=settings.queue_cache_size,
        max_in_flight=settings.max_in_flight,
    )
    authentication = Authentication([ApplicationKeys(settings.application_keys)])
    v1 = V1(service, authentication, frozenset(settings.application_keys))
    groups = GroupRoutes(v1, service.groups)
    router = Router([*v1.routes(), *groups.routes(), *ops.routes(service)])
    return QueueyApp(service, router, settings.cors_origins)


def from_environment() -> ASGIApp:
    """App factory for server workers: settings from ``QUEUEY_*`` variables."""
    return create_app(load())
