"""The ASGI application: lifespan, routing, the one error handler; wired to settings.

``QueueyApp`` is a plain ASGI callable (so httpx's ASGI transport drives it
in-process in tests, and granian serves it): it finds the route of the path's
segments, calls the endpoint, and turns every error into the JSON error
shape. The observer (request ids, access log, metrics) wraps everything, CORS
included. Only here does the HTTP layer touch storage: to open the backend
the settings name, give its optional stats hook the metrics, and hand it to
core.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from queuey.api import console, ops
from queuey.api.clients import ClientAddress
from queuey.api.groups import GroupRoutes
from queuey.api.http import (
    BROKEN_OFF,
    ASGIApp,
    ClientDisconnected,
    ReadTimeouts,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    path_segments,
)
from queuey.api.metrics import Metrics
from queuey.api.middleware import CORSMiddleware
from queuey.api.observe import ROUTE, AccessLog, Observer
from queuey.api.routes import V1
from queuey.api.routing import Router
from queuey.api.stopping import on_stop
from queuey.api.streams import StreamRoutes
from queuey.api.tokens import TokenRoutes
from queuey.config import DEFAULTS, Settings, load
from queuey.core.auth import ApplicationKeys, Authentication
from queuey.core.bearer import BearerTokens
from queuey.core.errors import (
    InvalidToken,
    MethodNotAllowed,
    NotFound,
    QueueyError,
    RequestTimeout,
    StorageUnavailable,
    TooManyRequests,
    ValidationError,
    from_storage,
)
from queuey.core.limits import Rate, RateLimiter
from queuey.core.messages import Limits
from queuey.core.oidc import People
from queuey.core.service import QueueService
from queuey.core.tokens import ScopedTokens
from queuey.storage import Storage, open_storage

log = logging.getLogger(__name__)
#: Seconds between two samples of the held reads of this process (for its metrics).
SAMPLE_SECONDS = 1.0
#: Answered, in case the client is still there, when its request body broke off.
BROKEN_BODY = (
    "The request body broke off before its end: the connection closed, "
    "or its chunked framing is malformed."
)


def error_response(error: QueueyError) -> Response:
    allow = error.allow if isinstance(error, MethodNotAllowed) else None
    headers = [(b"allow", allow.encode())] if allow else []
    if isinstance(error, TooManyRequests):
        headers.append((b"retry-after", str(error.retry_after).encode()))
    if isinstance(error, RequestTimeout):  # the rest of the body is not worth waiting for
        headers.append((b"connection", b"close"))
    if isinstance(error, InvalidToken):  # RFC 6750: tells the client to get a fresh token
        headers.append((b"www-authenticate", b'Bearer error="invalid_token"'))
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
        self,
        service: QueueService,
        router: Router,
        cors_origins: tuple[str, ...] = (),
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
        read_timeout: float = DEFAULTS["read_timeout"],
    ) -> None:
        self.service = service
        self.read_timeouts = ReadTimeouts(read_timeout)
        #: Wake held requests at SIGTERM/SIGINT (a granian worker: see ``api/stopping.py``).
        self.stop_on_signals = False
        self.router = router
        self.routes = router.routes
        self.metrics = metrics
        handle: ASGIApp = self._http
        if cors_origins:
            handle = CORSMiddleware(handle, cors_origins)
        self._handle: ASGIApp = handle
        if metrics is not None or access_log is not None:
            self._handle = Observer(handle, self.route_of, access_log, metrics)

    def route_of(self, scope: Scope) -> str:
        """The template of the route a path matches, or "-"."""
        found = self.router.find(path_segments(scope))
        return found[0].path if found is not None else "-"

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Start the store; close it at the end (tests enter this themselves).

        At the end, and at SIGTERM in a server worker, held requests (claims
        with ``wait``) are woken to answer as they stand.
        """
        await self.service.storage.start()
        waiters = self.service.messages.waiters
        undo = on_stop(waiters.close) if self.stop_on_signals else None
        sampler = None
        if self.metrics is not None:
            sampler = asyncio.get_running_loop().create_task(self._sample(self.metrics))
        try:
            yield
        finally:
            waiters.close()
            if undo is not None:
                undo()
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            if self.metrics is not None:
                self.metrics.flush()
            await self.service.storage.close()  # the writer runs what was submitted first

    async def _sample(self, metrics: Metrics) -> None:
        """Keep this process's series current: each worker writes its own, every second."""
        waiters = self.service.messages.waiters
        while True:
            metrics.held.set(waiters.count("read") + waiters.count("claim"))
            metrics.streams.set(waiters.count("stream"))
            metrics.flush()
            await asyncio.sleep(SAMPLE_SECONDS)

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
            scope[ROUTE] = route.path
            endpoint = route.endpoints.get(scope["method"])
            if endpoint is None:
                raise MethodNotAllowed(allow=", ".join(sorted(route.methods)))
            response = await endpoint(Request(scope, receive, segments, params, self.read_timeouts))
        except ClientDisconnected:
            log.debug("request body broke off: %s %s", scope["method"], scope["path"])
            scope[BROKEN_OFF] = True
            response = error_response(ValidationError({"body": BROKEN_BODY}))
            response.headers.append((b"connection", b"close"))
        except Exception as exc:  # noqa: BLE001 - the one handler: every error is JSON
            error = as_queuey_error(exc)
            if isinstance(error, StorageUnavailable) and self.metrics is not None:
                self.metrics.storage_error()
            response = error_response(error)
            # Its traceback holds this frame, which holds it: without this cycle the request,
            # and with it granian's hold on the connection, goes as soon as we return (so a
            # 408 closes the connection at once, not at the next garbage collection).
            exc.__traceback__ = None
        await response.send(send, head=scope["method"] == "HEAD", receive=receive)

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
                _freeze_start_up()
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
        reserve_bytes=settings.storage_reserve_bytes,
    )


def limiter_for(settings: Settings) -> RateLimiter:
    """The rate limits of ``[applications.NAME]`` and ``[limits] anonymous_*``."""
    rates = {
        app: rate
        for app, limits in settings.applications.items()
        if (rate := Rate.of(limits.requests_per_second, limits.burst)) is not None
    }
    anonymous = Rate.of(settings.anonymous_requests_per_second, settings.anonymous_burst)
    return RateLimiter(rates, anonymous)


def create_app(settings: Settings, storage: Storage | None = None) -> QueueyApp:
    """Queuey for these settings, as an ASGI app (the observer, then CORS, outermost)."""
    store = storage if storage is not None else storage_for(settings)
    service = QueueService(
        store,
        Limits(settings.max_message_bytes, settings.max_request_bytes),
        cache_seconds=settings.queue_cache_seconds,
        cache_size=settings.queue_cache_size,
        max_in_flight=settings.max_in_flight,
    )
    service.queues.max_queues = {
        app: limits.max_queues
        for app, limits in settings.applications.items()
        if limits.max_queues > 0
    }
    metrics = Metrics()
    # Optional on the storage contract: backends that report figures of their own (SQLite).
    observe = getattr(store, "observe", None)
    if callable(observe):
        observe(on_commit=metrics.commit, on_purge=metrics.purged)
    client_address = ClientAddress(settings.trusted_proxies)
    tokens = ScopedTokens(settings.token_secret)
    authentication = Authentication(
        [
            ApplicationKeys(settings.application_keys),
            BearerTokens(tokens, People(settings.issuers)),
        ]
    )
    v1 = V1(
        service,
        authentication,
        frozenset(settings.application_keys),
        limiter=limiter_for(settings),
        client_address=client_address,
        metrics=metrics,
    )
    groups = GroupRoutes(v1, service.groups)
    minting = TokenRoutes(v1, tokens)
    streams = StreamRoutes(v1, settings.stream_heartbeat, settings.stream_max_seconds)
    operations = ops.routes(service, metrics, client_address, settings.metrics_allow)
    router = Router(
        [
            *v1.routes(),
            *groups.routes(),
            *minting.routes(),
            *streams.routes(),
            *operations,
            *console.routes(),
        ]
    )
    access_log = AccessLog(settings.log_format) if settings.access_log else None
    return QueueyApp(
        service, router, settings.cors_origins, metrics, access_log, settings.read_timeout
    )


def from_environment() -> ASGIApp:
    """App factory for server workers: settings from ``QUEUEY_*`` variables."""
    app = create_app(load())
    app.stop_on_signals = True
    return app


def _freeze_start_up() -> None:
    """Keep what a server worker holds from start-up out of the collector's full passes.

    The modules, classes and functions loaded by then are tens of thousands of
    objects that live as long as the process, and every full collection
    walked them all again: 12 ms, every second or two under load, which every
    request under way waited for (claims' p99 at half the top claim rate went
    from 10-12 ms to 4 ms without it). ``gc.freeze`` moves them to a
    generation no collection walks; what is made later is collected as before.
    """
    gc.collect()
    gc.freeze()
