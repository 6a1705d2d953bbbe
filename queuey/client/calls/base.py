"""What every call is built of: :class:`Call`, the URL paths, and values as the API reads them."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from queuey.client.models import Delivery, Message, Sent

T = TypeVar("T")

#: ``since`` as the client takes it: an id or timestamp string, epoch seconds, or a datetime.
Since = str | int | float | datetime
#: A message named for reads, overwrites and deletes by id: ``"id"``, ``"N:id"`` or one read.
Ref = str | Message | Sent
#: A lease named for ack, release and extend: its receipt or the delivery.
Receipt = str | Delivery

encode = msgspec.json.encode
decode = msgspec.json.decode


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request, and what its successful (2xx) JSON answer becomes."""

    method: str
    path: str
    parse: Callable[[dict[str, Any]], T]
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    #: Safe to send again when it may already have reached the server (a broken
    #: connection, a 503): true where the server makes a repeat harmless.
    resend: bool = True
    #: Seconds the server may hold the answer (long polls): added to the read timeout.
    wait: float = 0.0


def json_body(value: Any) -> tuple[bytes, dict[str, str]]:
    """A JSON request body and its ``Content-Type``."""
    return encode(value), {"Content-Type": "application/json"}


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the given fields: None means "not given" (as in the API)."""
    return {k: v for k, v in values.items() if v is not None}


def nothing(_: dict[str, Any]) -> None:
    """The result of a call whose answer says nothing more than success."""
    return None


def settings_of(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer of settings (a queue's, a group's), without its ``status``."""
    return {k: v for k, v in answer.items() if k != "status"}


def segment(name: str) -> str:
    """A name as one path segment (``user:42`` and ``a+b@c`` included)."""
    return quote(name, safe="")


def since_text(since: Since) -> str:
    """``since`` as the API reads it: an id or a timestamp with at most 7 fractional digits."""
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise ValueError("since: a datetime needs a time zone")
        since = since.timestamp()
    if isinstance(since, bool):
        raise TypeError("since: not a boolean")
    if isinstance(since, int):
        return str(since)
    if isinstance(since, float):
        if not math.isfinite(since) or since < 0:
            raise ValueError(f"since: {since} is not a time")
        return f"{since:.7f}"
    return since


def ref_text(ref: Ref) -> str:
    if isinstance(ref, Message | Sent):
        return ref.ref
    return ref


def refs_path(refs: Iterable[Ref]) -> str:
    texts = [ref_text(r) for r in refs]
    if not texts:
        raise ValueError("no message ids given")
    return ",".join(quote(t, safe=":") for t in texts)


def receipts(leases: Iterable[Receipt]) -> list[str]:
    found = [r.receipt if isinstance(r, Delivery) else r for r in leases]
    if not found:
        raise ValueError("no receipts given")
    return found


def partitions_text(partitions: Iterable[int]) -> str:
    return ",".join(str(int(p)) for p in partitions)


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class Paths:
    """The URL paths of one application."""

    def __init__(self, app: str) -> None:
        self.app = f"/v1/{segment(app)}"

    def queue(self, name: str) -> str:
        return f"{self.app}/{segment(name)}"

    def group(self, queue: str, group: str) -> str:
        return f"{self.queue(queue)}/groups/{segment(group)}"
