"""The error catalog: every error Queuey answers, with its status and JSON key.

Core code raises these; one handler in the HTTP layer turns any of them into
``{"status": "error", "error_msg": {KEY: MESSAGE, ...}}``. Storage raises its
own few exceptions (``storage.base``); :func:`from_storage` is the one place
that maps them into this catalog.

    QueueyError
    ├── InvalidApplicationKey   401
    ├── InvalidToken            401  (a bearer token: invalid, expired, unverifiable)
    ├── AccessDenied            403
    ├── QuotaExceeded           403  (an application's most queues)
    ├── NotFound                404  (unknown application or path)
    ├── InvalidQueueName        404  (unknown queue)
    ├── InvalidGroupName        404  (unknown consumer group)
    ├── MethodNotAllowed        405
    ├── RequestTimeout          408  (the body stopped arriving: [server] read_timeout)
    ├── LeaseLost               409  (with what was done and what was lost)
    ├── PayloadTooLarge         413
    ├── TooManyRequests         429  (with the seconds to wait: Retry-After)
    ├── InvalidJSON             400
    ├── InvalidMessageID        400
    ├── InvalidUpdate           400
    ├── ValidationError         400  (keyed by field: "ttl", "1.partition", ...)
    └── StorageUnavailable      503
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from queuey.storage import base as storage
from queuey.storage.groups import GroupNotFound

log = logging.getLogger(__name__)


class QueueyError(Exception):
    """An error with an HTTP status and a JSON body; ``key`` defaults to the class name."""

    status = 400
    default_message = "Bad request."
    #: Fields of the error body beside ``status`` and ``error_msg``.
    extra: Mapping[str, object] = {}

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    @property
    def fields(self) -> Mapping[str, str]:
        return {type(self).__name__: self.message}


class InvalidApplicationKey(QueueyError):
    status = 401
    default_message = "No application is known by that key."


class InvalidToken(QueueyError):
    """A bearer token (a person's JWT or a scoped token) that cannot be accepted (SPEC §8).

    Answered with ``WWW-Authenticate: Bearer error="invalid_token"``; the
    message says what is wrong (expired, bad signature, issuer unreachable...).
    """

    status = 401
    default_message = "The bearer token is not valid."


class AccessDenied(QueueyError):
    status = 403
    default_message = "Access was denied to this resource."


class QuotaExceeded(QueueyError):
    status = 403
    default_message = "This application has as many queues as it may have."


class NotFound(QueueyError):
    status = 404
    default_message = "Nothing was found at this path."


class InvalidQueueName(QueueyError):
    status = 404
    default_message = "Queue of that name was not found."


class MethodNotAllowed(QueueyError):
    status = 405
    default_message = "This method is not allowed on this resource."

    def __init__(self, message: str | None = None, allow: str | None = None) -> None:
        super().__init__(message)
        self.allow = allow


class RequestTimeout(QueueyError):
    status = 408
    default_message = "The request body stopped arriving."


class PayloadTooLarge(QueueyError):
    status = 413
    default_message = "The request body is too large."


class TooManyRequests(QueueyError):
    """Over a rate limit (SPEC §9); ``retry_after``: whole seconds until a request may pass."""

    status = 429
    default_message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidJSON(QueueyError):
    default_message = "The request body is not valid JSON."


class InvalidMessageID(QueueyError):
    default_message = "Not a valid message id."


class InvalidUpdate(QueueyError):
    default_message = "This change is not allowed."


class StorageUnavailable(QueueyError):
    status = 503
    default_message = "The message store is unavailable; try again later."


class InvalidGroupName(QueueyError):
    status = 404
    default_message = "Group of that name was not found."


class LeaseLost(QueueyError):
    """Some receipts were lost (SPEC §6); ``outcome`` lists what was done and what was lost."""

    status = 409
    default_message = "A lease was lost: another delivery or a seek superseded it, or it expired."

    def __init__(self, outcome: Mapping[str, list[str]]) -> None:
        super().__init__()
        self.extra = dict(outcome)


class ValidationError(QueueyError):
    """Invalid fields of a request, all reported together."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = dict(fields)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self._fields.items()))

    @property
    def fields(self) -> Mapping[str, str]:
        return self._fields


def from_storage(exc: BaseException) -> QueueyError | None:
    """The catalog's error for an exception storage raised; None if it is not one."""
    if isinstance(exc, storage.StoreUnavailable):
        log.warning("storage unavailable: %s", exc)
        return StorageUnavailable()
    if isinstance(exc, storage.QueueNotFound):
        return InvalidQueueName()
    if isinstance(exc, GroupNotFound):
        return InvalidGroupName()
    if isinstance(exc, storage.QueueChanged):  # changed twice during one request
        return StorageUnavailable("The queue changed during the request; try again.")
    return None
