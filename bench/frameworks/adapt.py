"""What the framework adapters share: Queuey itself, minus its HTTP layer.

An adapter is Queuey with Starlette or Falcon as its HTTP layer. It takes
from ``create_app`` everything that is not HTTP plumbing: the endpoints of
``/v1/{app}/{queue}`` (``V1.read_messages`` and ``V1.post_messages``, so the
same checks in the same order, the same core and store), the observer
(request ids, access log, metrics) and the lifespan. The framework does the
rest, as an app written for it would: routing and path parameters, headers,
query and body through its own request object, the answer through its own
response, errors through its own exception handler. The endpoints read the
request through :class:`queuey.api.http.Request`; each adapter subclasses it
to read from the framework's request instead. The body comes through the
framework's stream, without Queuey's read timeout (``http.ReadTimeouts``,
about 1 µs a request): a small advantage to the adapters.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable
from dataclasses import dataclass

from queuey.api.app import QueueyApp, as_queuey_error, create_app, error_response
from queuey.api.http import ASGIApp, BodyTooLarge, Receive, Response, Scope, Send
from queuey.api.observe import AccessLog, Observer
from queuey.api.routing import Endpoint
from queuey.config import Settings
from queuey.core.errors import StorageUnavailable
from queuey.storage.base import Storage

#: The one application the bench serves; its SQLite file and key come from the environment.
APP = "bench"
STORAGE_URL_VARIABLE = "QUEUEY_BENCH_STORAGE_URL"
KEY_VARIABLE = "QUEUEY_BENCH_KEY"
#: The route the adapters serve, as Queuey names it. An adapter notes it in the scope
#: (``observe.ROUTE``) as Queuey's router does, for the access log and the metrics.
MESSAGES = "/v1/{app}/{queue}"


def settings_from_environment() -> Settings:
    """What a server of the bench serves: its SQLite file, application ``bench`` and its key."""
    return Settings(
        storage_url=os.environ[STORAGE_URL_VARIABLE],
        application_keys={APP: (os.environ[KEY_VARIABLE],)},
    )


@dataclass(frozen=True)
class Queuey:
    """The parts of Queuey an adapter serves, built by ``create_app``."""

    app: QueueyApp
    read: Endpoint
    post: Endpoint
    access_log: AccessLog | None

    @classmethod
    def of(cls, settings: Settings, storage: Storage | None = None) -> Queuey:
        app = create_app(settings, storage)
        found = app.router.find(["v1", APP, "queue"])
        assert found is not None and found[0].path == MESSAGES
        endpoints = found[0].endpoints
        access_log = AccessLog(settings.log_format) if settings.access_log else None
        return cls(app, endpoints["GET"], endpoints["POST"], access_log)

    def error(self, exc: Exception) -> Response:
        """Any exception as Queuey's one handler answers it."""
        error = as_queuey_error(exc)
        if isinstance(error, StorageUnavailable) and self.app.metrics is not None:
            self.app.metrics.storage_error()
        return error_response(error)

    def observed(self, framework_app: ASGIApp) -> ASGIApp:
        """``framework_app`` behind Queuey's observer, as ``create_app`` puts Queuey behind it."""
        observer = Observer(framework_app, self.app.route_of, self.access_log, self.app.metrics)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                await observer(scope, receive, send)
            else:
                await framework_app(scope, receive, send)

        return app


async def read_body(declared: str | None, chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The body from the framework's stream, with ``Request.body``'s limit rules."""
    if declared is not None and declared.isdigit() and declared.isascii():
        size = len(declared.lstrip("0"))
        if size > 20 or int(declared) > limit:
            raise BodyTooLarge(limit, int(declared) if size <= 20 else None)
    parts: list[bytes] = []
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit, None)
        parts.append(chunk)
    return b"".join(parts)
