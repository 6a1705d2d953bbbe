"""Queuey's Python client: blocking (:class:`Client`) or asyncio (:class:`AsyncClient`).

It talks HTTP only (httpx), so it needs none of the server's code::

    from queuey.client import Client

    with Client("http://127.0.0.1:5000", app="queuey", key=KEY) as client:
        orders = client.queue("orders")
        orders.create(partitions=4)
        orders.post("hello")
        for message in orders.iter():
            print(message.body)

See docs/client.md for the whole tour.
"""

from queuey.client.aio import AsyncClient, AsyncGroup, AsyncQueue
from queuey.client.core import Retry
from queuey.client.errors import (
    AccessDenied,
    BadRequest,
    ConnectionFailed,
    InvalidApplicationKey,
    InvalidGroupName,
    InvalidJSON,
    InvalidMessageID,
    InvalidQueueName,
    InvalidToken,
    InvalidUpdate,
    LeaseLost,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QueueyError,
    QuotaExceeded,
    RequestTimeout,
    StorageUnavailable,
    TimedOut,
    TooManyRequests,
    Unauthorized,
    ValidationError,
)
from queuey.client.models import Delivery, Message, Sent, Tally, Token
from queuey.client.sync import Client, Group, Queue

__all__ = [
    "AccessDenied",
    "AsyncClient",
    "AsyncGroup",
    "AsyncQueue",
    "BadRequest",
    "Client",
    "ConnectionFailed",
    "Delivery",
    "Group",
    "InvalidApplicationKey",
    "InvalidGroupName",
    "InvalidJSON",
    "InvalidMessageID",
    "InvalidQueueName",
    "InvalidToken",
    "InvalidUpdate",
    "LeaseLost",
    "Message",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "Queue",
    "QueueyError",
    "QuotaExceeded",
    "RequestTimeout",
    "Retry",
    "Sent",
    "StorageUnavailable",
    "Tally",
    "TimedOut",
    "Token",
    "TooManyRequests",
    "Unauthorized",
    "ValidationError",
]
