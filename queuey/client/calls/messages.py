"""The calls on a queue's messages: post, read, overwrite, delete, stream, and tokens."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from queuey.client.calls.base import (
    Call,
    Paths,
    Ref,
    Since,
    given,
    json_body,
    new_idempotency_key,
    nothing,
    partitions_text,
    refs_path,
    since_text,
)
from queuey.client.models import Message, Sent, Token


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
    keyed: bool,
) -> Call[Sent]:
    """Post one message; with ``keyed`` and no ``idempotency_key``, under a fresh key."""
    if idempotency_key is None and keyed:
        idempotency_key = new_idempotency_key()
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
        message = given(item)
        if keyed and "idempotency_key" not in message:
            message["idempotency_key"] = new_idempotency_key()
        messages.append(message)
    content, headers = json_body({"messages": messages})
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
        "PUT", f"{paths.queue(queue)}/{refs_path(refs)}", nothing, headers=headers, content=content
    )


def delete_messages(paths: Paths, queue: str, refs: Iterable[Ref]) -> Call[None]:
    return Call("DELETE", f"{paths.queue(queue)}/{refs_path(refs)}", nothing)


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
    content, headers = json_body(given(fields))

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
    return Call("GET", f"{paths.queue(queue)}/stream", nothing, params=params, headers=headers)
