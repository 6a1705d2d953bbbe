"""The ASGI application: routes, middleware, error handlers, storage lifecycle."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from queuey.api import ops, routes
from queuey.api.middleware import CORSMiddleware, HeadMiddleware
from queuey.api.responses import handle_error
from queuey.config import Settings, load
from queuey.core.access import ApplicationKeys
from queuey.core.errors import QueueyError
from queuey.core.service import Limits, QueueService
from queuey.storage import Storage, open_storage
from queuey.storage.base import QueueChanged, QueueNotFound, StorageUnavailable


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
    )


def create_app(settings: Settings, storage: Storage | None = None) -> Starlette:
    """Queuey as an ASGI app; the storage starts and stops with the app's lifespan."""
    store = storage if storage is not None else storage_for(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        try:
            yield
        finally:
            await store.close()

    app = Starlette(
        # /v1 first: it is what almost every request asks for.
        routes=[*routes.routes, *ops.routes],
        middleware=[
            Middleware(HeadMiddleware),
            Middleware(CORSMiddleware, origins=settings.cors_origins),
        ],
        # Expected errors by class; Exception last, for bugs (a JSON 500, no traceback sent).
        exception_handlers={
            QueueyError: handle_error,
            StorageUnavailable: handle_error,
            QueueNotFound: handle_error,
            QueueChanged: handle_error,
            HTTPException: handle_error,
            Exception: handle_error,
        },
        lifespan=lifespan,
    )
    # "/v1/app/" is not "/v1/app": a redirect would not be JSON.
    app.router.redirect_slashes = False
    app.state.service = QueueService(
        store, Limits(settings.max_message_bytes, settings.max_request_bytes)
    )
    app.state.authenticators = [ApplicationKeys(settings.application_keys)]
    app.state.applications = frozenset(settings.application_keys)
    return app


def from_environment() -> Starlette:
    """App factory for server workers: settings from ``QUEUEY_*`` variables."""
    return create_app(load())
