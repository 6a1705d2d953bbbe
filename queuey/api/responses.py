"""JSON responses, success and error alike, and the one error-to-JSON mapping."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from queuey.core import errors
from queuey.storage.base import QueueChanged, QueueNotFound
from queuey.storage.base import StorageUnavailable as StorageDown

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


OK = {"status": "ok"}


def error_body(error: errors.QueueyError) -> dict[str, Any]:
    return {"status": "error", "error_msg": dict(error.fields)}


def error_response(error: errors.QueueyError, headers: dict[str, str] | None = None) -> JSON:
    return JSON(error_body(error), status_code=error.status, headers=headers)


def as_queuey_error(exc: Exception) -> errors.QueueyError:
    """Map anything raised while answering to the error catalog."""
    if isinstance(exc, errors.QueueyError):
        return exc
    if isinstance(exc, StorageDown):
        log.warning("storage unavailable: %s", exc)
        return errors.StorageUnavailable()
    if isinstance(exc, QueueNotFound):
        return errors.InvalidQueueName()
    if isinstance(exc, QueueChanged):  # changed twice during one request
        return errors.StorageUnavailable("The queue changed during the request; try again.")
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return errors.NotFound()
        if exc.status_code == 405:
            return errors.MethodNotAllowed()
        error = errors.QueueyError(str(exc.detail))
        error.status = exc.status_code
        return error
    log.error("unexpected error", exc_info=exc)
    error = errors.QueueyError("The server failed to answer this request.")
    error.status = 500
    return error


async def handle_error(request: Request, exc: Exception) -> Response:
    error = as_queuey_error(exc)
    headers = None
    if isinstance(exc, HTTPException) and exc.headers:
        headers = dict(exc.headers)
    return error_response(error, headers)
