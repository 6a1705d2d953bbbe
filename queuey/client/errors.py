"""What the client raises: one exception per kind of answer, carrying the server's words.

    QueueyError                  status, error_msg (the server's ``{KEY: MESSAGE}``), body
    ├── BadRequest               400
    │   ├── ValidationError      400 keyed by field (``ttl``, ``1.partition``): ``.fields``
    │   ├── InvalidJSON          400
    │   ├── InvalidMessageID     400
    │   └── InvalidUpdate        400
    ├── Unauthorized             401
    │   ├── InvalidApplicationKey
    │   └── InvalidToken
    ├── AccessDenied             403
    │   └── QuotaExceeded
    ├── NotFound                 404 (unknown application or path)
    │   ├── InvalidQueueName     404 (unknown queue)
    │   └── InvalidGroupName     404 (unknown consumer group)
    ├── MethodNotAllowed         405
    ├── RequestTimeout           408
    ├── LeaseLost                409: ``.acknowledged`` (or released, extended) and ``.lost``
    ├── PayloadTooLarge          413
    ├── TooManyRequests          429: ``.retry_after`` seconds
    ├── StorageUnavailable       503
    └── ConnectionFailed         no answer (status None): ``.cause`` is httpx's exception
        └── TimedOut

The class comes from the error's key when the server names one (every error
of SPEC §1), else from the HTTP status, else :class:`QueueyError` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class QueueyError(Exception):
    """An error answer of a Queuey server, or no answer at all (``status`` None)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error_msg: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: The HTTP status, or None when the server did not answer.
        self.status = status
        #: The server's ``error_msg``: offending field or error class → message.
        self.error_msg: dict[str, str] = dict(error_msg or {})
        #: The whole JSON answer (extra fields such as ``lost`` included).
        self.body: dict[str, Any] = dict(body or {})


class BadRequest(QueueyError):
    """400: the request was refused as it stands."""


class ValidationError(BadRequest):
    """400 keyed by field names; every invalid field of the request is in ``fields``."""

    @property
    def fields(self) -> dict[str, str]:
        return self.error_msg


class InvalidJSON(BadRequest):
    pass


class InvalidMessageID(BadRequest):
    pass


class InvalidUpdate(BadRequest):
    pass


class Unauthorized(QueueyError):
    """401: a credential the server does not accept."""


class InvalidApplicationKey(Unauthorized):
    pass


class InvalidToken(Unauthorized):
    pass


class AccessDenied(QueueyError):
    """403: these credentials lack the rights for the resource."""


class QuotaExceeded(AccessDenied):
    pass


class NotFound(QueueyError):
    """404: an unknown application, queue, group or path."""


class InvalidQueueName(NotFound):
    pass


class InvalidGroupName(NotFound):
    pass


class MethodNotAllowed(QueueyError):
    pass


class RequestTimeout(QueueyError):
    pass


class PayloadTooLarge(QueueyError):
    pass


class LeaseLost(QueueyError):
    """409: some receipts were lost; the others were settled all the same.

    ``acknowledged`` holds the receipts that were accepted (for a release: the
    released ones; for an extension: the extended ones), ``lost`` the others.
    """

    @property
    def acknowledged(self) -> list[str]:
        for done in ("acknowledged", "released", "extended"):
            if done in self.body:
                return list(self.body[done] or [])
        return []

    @property
    def lost(self) -> list[str]:
        return list(self.body.get("lost") or [])


class TooManyRequests(QueueyError):
    """429: over the application's rate; try again after ``retry_after`` seconds."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class StorageUnavailable(QueueyError):
    """503: the server's store did not answer; the outcome of a write is unknown."""


class ConnectionFailed(QueueyError):
    """No answer: the server could not be reached, or the connection broke."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class TimedOut(ConnectionFailed):
    """No answer within the configured timeout."""


#: Failures that pass (a restarting server, a busy one): what a long-running loop
#: (``iter(follow=True)``, ``consume``) waits out rather than raises.
TRANSIENT = (ConnectionFailed, StorageUnavailable, TooManyRequests)

#: Errors by the key the server names them with.
BY_KEY: dict[str, type[QueueyError]] = {
    cls.__name__: cls
    for cls in (
        InvalidJSON,
        InvalidMessageID,
        InvalidUpdate,
        InvalidApplicationKey,
        InvalidToken,
        AccessDenied,
        QuotaExceeded,
        NotFound,
        InvalidQueueName,
        InvalidGroupName,
        MethodNotAllowed,
        RequestTimeout,
        LeaseLost,
        PayloadTooLarge,
        TooManyRequests,
        StorageUnavailable,
    )
}

#: Errors by HTTP status, for answers whose key names no class (400: a field).
BY_STATUS: dict[int, type[QueueyError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: AccessDenied,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    409: LeaseLost,
    413: PayloadTooLarge,
    429: TooManyRequests,
    503: StorageUnavailable,
}


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (whole seconds; dates are not used by Queuey)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def from_answer(status: int, body: Any, headers: Mapping[str, str]) -> QueueyError:
    """The exception for an error answer: ``body`` is the decoded JSON (anything, if it was not)."""
    fields = body.get("error_msg") if isinstance(body, dict) else None
    error_msg = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    named = [BY_KEY[key] for key in error_msg if key in BY_KEY]
    cls = named[0] if named else BY_STATUS.get(status, QueueyError)
    if error_msg:
        message = "; ".join(f"{k}: {v}" for k, v in error_msg.items())
    else:
        message = f"HTTP {status}"
    whole = body if isinstance(body, dict) else {}
    if cls is TooManyRequests:
        return TooManyRequests(
            message, status, error_msg, whole, retry_after=retry_after(headers.get("retry-after"))
        )
    return cls(message, status, error_msg, whole)
