"""Every endpoint as a :class:`Call`: the request, how to read its answer, whether to resend.

No I/O here: :class:`~queuey.client.sync.Client` and
:class:`~queuey.client.aio.AsyncClient` send the same calls, one blocking and
one with ``await``, so both speak the protocol through this one module.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from queuey.client.models import Delivery, Message, Sent, Token

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


def _json(value: Any) -> tuple[bytes, dict[str, str]]:
    return encode(value), {"Content-Type": "application/json"}


def _fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the given fields: None means "not given" (as in the API)."""
    return {k: v for k, v in values.items() if v is not None}


def _nothing(_: dict[str, Any]) -> None:
    return None


def _settings(answer: dict[str, Any]) -> dict[str, Any]:
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


# -- queues -----------------------------------------------------------------------


def list_queues(
    paths: Paths, offset: str | None, limit: int, details: bool, count: bool
) -> Call[tuple[list[dict[str, Any]], str | None]]:
    params = {"limit": str(limit)}
    if offset is not None:
        params["offset"] = offset
    if details:
        params["details"] = "true"
    if count:
        params["include_count"] = "true"

    def parse(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        return list(answer.get("queues") or []), answer.get("next")

    return Call("GET", paths.app, parse, params=params)


def create_queue(paths: Paths, name: str, fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    content, headers = _json({"queue_name": name, **_fields(fields)})
    # Creating a queue that exists changes nothing: a repeat is harmless.
    return Call("POST", paths.app, _settings, headers=headers, content=content)


def update_queue(paths: Paths, name: str, fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    content, headers = _json(_fields(fields))
    return Call("PUT", paths.queue(name), _settings, headers=headers, content=content)


def delete_queue(paths: Paths, name: str) -> Call[None]:
    return Call("DELETE", paths.queue(name), _nothing)


# -- messages ---------------------------------------------------------------------


def _sent(answer: dict[str, Any]) -> list[Sent]:
    return [Sent.from_json(item) for item in answer.get("messages") or []]


def _first_sent(answer: dict[str, Any]) -> Sent:
    return _sent(answer)[0]


def post(
    paths: Paths,
    queue: str,
    body: str | bytes,
    ttl: int | None,
    partition: int | None,
    content_type: str | None,
    idempotency_key: str | None,
) -> Call[Sent]:
    content = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type or "text/plain"}
    if ttl is not None:
        headers["X-TTL"] = str(ttl)
    if partition is not None:
        headers["X-Partition"] = str(partition)
    if idempotency_key:
        headers["X-Idempotency-Key"] = idempotency_key
    # Without a key a resent post may be stored twice (SPEC §3): send it once.
    return Call(
        "POST",
        paths.queue(queue),
        _first_sent,
        headers=headers,
        content=content,
        resend=bool(idempotency_key),
    )


BATCH_FIELDS = frozenset({"body", "ttl", "partition", "content_type", "idempotency_key"})


def post_many(
    paths: Paths, queue: str, items: Sequence[Mapping[str, Any]], keyed: bool
) -> Call[list[Sent]]:
    messages = []
    for index, item in enumerate(items):
        unknown = set(item) - BATCH_FIELDS
        if unknown:
            raise ValueError(f"message {index}: unknown fields {sorted(unknown)}")
        message = _fields(item)
        if keyed and "idempotency_key" not in message:
            message["idempotency_key"] = new_idempotency_key()
        messages.append(message)
    content, headers = _json({"messages": messages})
    resend = all(m.get("idempotency_key") for m in messages)
    return Call("POST", paths.queue(queue), _sent, headers=headers, content=content, resend=resend)


def _messages(answer: dict[str, Any]) -> list[Message]:
    return [Message.from_json(item) for item in answer.get("messages") or []]


def read(
    paths: Paths,
    queue: str,
    since: Since | None,
    limit: int | None,
    order: str | None,
    partitions: Iterable[int] | None,
    wait: float | None,
) -> Call[list[Message]]:
    params = {}
    if since is not None:
        params["since"] = since_text(since)
    if limit is not None:
        params["limit"] = str(limit)
    if order is not None:
        params["order"] = order
    if partitions is not None:
        params["partitions"] = partitions_text(partitions)
    if wait:
        params["wait"] = str(math.ceil(wait))
    return Call("GET", paths.queue(queue), _messages, params=params, wait=float(wait or 0))


def get(paths: Paths, queue: str, refs: Iterable[Ref]) -> Call[list[Message]]:
    return Call("GET", f"{paths.queue(queue)}/{refs_path(refs)}", _messages)


def put(
    paths: Paths,
    queue: str,
    refs: Iterable[Ref],
    body: str | bytes,
    ttl: int | None,
    content_type: str | None,
) -> Call[None]:
    content = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type or "text/plain"}
    if ttl is not None:
        headers["X-TTL"] = str(ttl)
    return Call(
        "PUT", f"{paths.queue(queue)}/{refs_path(refs)}", _nothing, headers=headers, content=content
    )


def delete_messages(paths: Paths, queue: str, refs: Iterable[Ref]) -> Call[None]:
    return Call("DELETE", f"{paths.queue(queue)}/{refs_path(refs)}", _nothing)


def token(
    paths: Paths,
    queue: str,
    ttl: int | None,
    scope: str | Sequence[str] | None,
    partitions: Iterable[int] | None,
) -> Call[Token]:
    fields: dict[str, Any] = {"ttl": ttl, "scope": scope}
    if isinstance(scope, str):
        fields["scope"] = [scope]
    if partitions is not None:
        fields["partitions"] = [int(p) for p in partitions]
    content, headers = _json(_fields(fields))

    def parse(answer: dict[str, Any]) -> Token:
        return Token(
            token=answer["token"],
            expires_in=int(answer["expires_in"]),
            scope=tuple(answer.get("scope") or ()),
        )

    # A second token is as good as the first.
    return Call("POST", f"{paths.queue(queue)}/tokens", parse, headers=headers, content=content)


def stream(
    paths: Paths,
    queue: str,
    since: Since | None,
    partitions: Iterable[int] | None,
    last_event_id: str | None,
) -> Call[None]:
    """The request opening an event stream (SPEC §7); its body is read by ``sse``."""
    params = {}
    if since is not None:
        params["since"] = since_text(since)
    if partitions is not None:
        params["partitions"] = partitions_text(partitions)
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Call("GET", f"{paths.queue(queue)}/stream", _nothing, params=params, headers=headers)


# -- consumer groups --------------------------------------------------------------


def list_groups(paths: Paths, queue: str) -> Call[list[dict[str, Any]]]:
    def parse(answer: dict[str, Any]) -> list[dict[str, Any]]:
        return list(answer.get("groups") or [])

    return Call("GET", f"{paths.queue(queue)}/groups", parse)


def put_group(
    paths: Paths, queue: str, group: str, fields: Mapping[str, Any]
) -> Call[dict[str, Any]]:
    content, headers = _json(_fields(fields))
    return Call("PUT", paths.group(queue, group), _settings, headers=headers, content=content)


def get_group(paths: Paths, queue: str, group: str) -> Call[dict[str, Any]]:
    return Call("GET", paths.group(queue, group), _settings)


def delete_group(paths: Paths, queue: str, group: str) -> Call[None]:
    return Call("DELETE", paths.group(queue, group), _nothing)


def claim(
    paths: Paths,
    queue: str,
    group: str,
    limit: int | None,
    wait: float | None,
    partitions: Iterable[int] | None,
    consumer: str | None,
) -> Call[list[Delivery]]:
    fields: dict[str, Any] = {"limit": limit, "consumer": consumer}
    if wait:
        fields["wait"] = math.ceil(wait)
    if partitions is not None:
        fields["partitions"] = [int(p) for p in partitions]
    content, headers = _json(_fields(fields))

    def parse(answer: dict[str, Any]) -> list[Delivery]:
        lease = int(answer.get("lease_seconds") or 30)
        return [Delivery.from_claim(item, lease) for item in answer.get("messages") or []]

    # A claim resent after it reached the server would lease messages nobody
    # holds until the lease ends (and lose them under at_most_once): sent once.
    return Call(
        "POST",
        f"{paths.group(queue, group)}/claim",
        parse,
        headers=headers,
        content=content,
        resend=False,
        wait=float(wait or 0),
    )


def _settle(
    paths: Paths,
    queue: str,
    group: str,
    action: str,
    done: str,
    fields: dict[str, Any],
    resend: bool,
) -> Call[list[str]]:
    content, headers = _json(_fields(fields))

    def parse(answer: dict[str, Any]) -> list[str]:
        return list(answer.get(done) or [])

    return Call(
        "POST",
        f"{paths.group(queue, group)}/{action}",
        parse,
        headers=headers,
        content=content,
        resend=resend,
    )


def ack(paths: Paths, queue: str, group: str, leases: Iterable[Receipt]) -> Call[list[str]]:
    # An accepted receipt is accepted again (SPEC §6): a resent ack is answered as the first.
    fields = {"receipts": receipts(leases)}
    return _settle(paths, queue, group, "ack", "acknowledged", fields, resend=True)


def ack_and_publish(
    paths: Paths,
    queue: str,
    group: str,
    leases: Iterable[Receipt],
    messages: Sequence[Mapping[str, Any]],
) -> Call[list[Sent]]:
    content, headers = _json(
        {"receipts": receipts(leases), "publish": [_fields(m) for m in messages]}
    )

    def parse(answer: dict[str, Any]) -> list[Sent]:
        return [Sent.from_json(item) for item in answer.get("published") or []]

    # An ack whose receipts were all accepted publishes nothing again.
    return Call("POST", f"{paths.group(queue, group)}/ack", parse, headers=headers, content=content)


def release(
    paths: Paths, queue: str, group: str, leases: Iterable[Receipt], delay: int | None
) -> Call[list[str]]:
    # A resent release finds the lease already ended and answers LeaseLost: sent once.
    fields = {"receipts": receipts(leases), "delay": delay}
    return _settle(paths, queue, group, "release", "released", fields, resend=False)


def extend(
    paths: Paths, queue: str, group: str, leases: Iterable[Receipt], seconds: int | None
) -> Call[list[str]]:
    fields = {"receipts": receipts(leases), "seconds": seconds}
    return _settle(paths, queue, group, "extend", "extended", fields, resend=True)


def seek(
    paths: Paths, queue: str, group: str, to: Since, partitions: Iterable[int] | None
) -> Call[dict[str, Any]]:
    fields: dict[str, Any] = {"to": to if to in ("earliest", "latest") else since_text(to)}
    if partitions is not None:
        fields["partitions"] = [int(p) for p in partitions]
    content, headers = _json(fields)
    return Call(
        "POST", f"{paths.group(queue, group)}/seek", _settings, headers=headers, content=content
    )
