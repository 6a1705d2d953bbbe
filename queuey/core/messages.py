"""Messages: posting, range reads, and reads, overwrites and deletes by id.

The HTTP layer has resolved the caller, the queue and the rights and read the
body; each method here validates its raw parameters (every invalid field
reported at once), talks to storage and returns plain dicts ready to be sent
as JSON. Nothing is stored unless the whole request is valid.

The write path, top-down: validate against the queue as found (possibly a
cached copy, see ``core.queues``) → store → if storage says the queue changed
since that copy, read it again, validate again and store once more. A 400
about a partition found against a cached copy is checked once against the
stored queue (another process may have grown it); any other 400 costs one
validation.

Idempotency keys (``X-Idempotency-Key``, ``idempotency_key`` per batch item)
are validated with the other fields and handed to storage, which answers a
key already used on the queue with the first post's key, timestamp and
partition (``Storage.post_messages``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from random import random as _random
from typing import Any, TypeVar

from queuey.config import DEFAULTS
from queuey.core import validation as v
from queuey.core.errors import InvalidJSON, InvalidQueueName, PayloadTooLarge, ValidationError
from queuey.core.ids import (
    format_id,
    format_timestamp,
    is_hex_id,
    parse_id,
    parse_id_list,
    parse_timestamp,
)
from queuey.core.queues import Queues, raise_if
from queuey.core.waiters import Waiters
from queuey.storage.base import (
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueChanged,
    QueueNotFound,
    Storage,
)
from queuey.storage.keys import MessageKey

DEFAULT_TTL = 259200  # 3 days
MAX_TTL = 2**25
#: Messages in one POST.
MAX_POST_MESSAGES = 1000
#: Messages per partition in one range read (the default and largest ``limit``).
MAX_READ_LIMIT = 1000
#: Longest ``wait`` of a range read, seconds.
MAX_WAIT = 60
#: Choice lists in the order the original named them in its messages.
ORDERS = ("descending", "ascending")

Parse = Callable[[Queue], list[NewMessage]]
P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes from ``[limits]`` (defaults declared in ``queuey.config``)."""

    max_message_bytes: int = DEFAULTS["max_message_bytes"]
    max_request_bytes: int = DEFAULTS["max_request_bytes"]


def message_info(message: Message) -> dict[str, Any]:
    return {
        "message_id": format_id(message.key),
        "timestamp": format_timestamp(message.key.ts),
        "body": message.body,
        "partition": message.partition,
        "content_type": message.content_type,
    }


def _text(body: bytes, errors: v.Errors) -> str:
    if not body:
        errors["body"] = "Required"
        return ""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        errors["body"] = "The message body is not UTF-8 text."
        return ""


def _any_partition(queue: Queue) -> int:
    """A partition chosen at random: ``random()`` scaled, a fifth of ``randint``'s cost
    (its bias, below 2**-45 for 200 partitions, does not matter for spreading load)."""
    return 1 + int(_random() * queue.partitions)


def _partition(value: Any, key: str, errors: v.Errors, queue: Queue) -> int:
    if not v.given(value):
        return _any_partition(queue)
    return v.integer(value, key, errors, 1, 1, queue.partitions)


def _fast(item: Any, target: Queue) -> NewMessage | None:
    """The usual batch item, ``{"body": "..."}`` with every default, or None: parse it fully."""
    if type(item) is dict and len(item) == 1:
        body = item.get("body")
        if type(body) is str and body:
            partition = 1 + int(_random() * target.partitions)  # _any_partition, inlined
            return NewMessage(body, "text/plain", DEFAULT_TTL, partition)
    return None


def parse_item(item: Any, prefix: str, errors: v.Errors, target: Queue) -> NewMessage | None:
    """One batch item for ``target``; its errors keyed ``prefix`` + field ("3.ttl")."""
    if not isinstance(item, dict):
        errors[prefix.rstrip(".")] = "must be an object with a body"
        return None
    before = len(errors)
    body = item.get("body")
    if body is None or body == "":
        errors[f"{prefix}body"] = "Required"
    elif not isinstance(body, str):
        errors[f"{prefix}body"] = "must be a string"
    ttl = v.integer(item.get("ttl"), f"{prefix}ttl", errors, DEFAULT_TTL, 1, MAX_TTL)
    partition = _partition(item.get("partition"), f"{prefix}partition", errors, target)
    content_type = item.get("content_type")
    if content_type is None or content_type == "":
        content_type = "text/plain"
    elif not isinstance(content_type, str):
        errors[f"{prefix}content_type"] = "must be a string"
    key = v.idempotency_key(item.get("idempotency_key"), f"{prefix}idempotency_key", errors)
    if len(errors) > before or not isinstance(body, str):
        return None
    return NewMessage(body, content_type, ttl, partition, key)


def posted_info(posted: Posted) -> dict[str, Any]:
    key = posted.key
    return {
        "key": format_id(key),
        "timestamp": format_timestamp(key.ts),
        "partition": posted.partition,
    }


def _about_partitions(error: ValidationError) -> bool:
    return any(k == "partition" or k.endswith(".partition") for k in error.fields)


class Messages:
    """The message operations of every queue, over one store."""

    def __init__(
        self, storage: Storage, queues: Queues, limits: Limits, waiters: Waiters | None = None
    ) -> None:
        self.storage = storage
        self.queues = queues
        self.limits = limits
        self.waiters = waiters or Waiters(storage)

    # -- posting -------------------------------------------------------------

    def check_size(self, text: str | bytes, what: str | int) -> None:
        """413 when ``text`` has more UTF-8 bytes than a message may; ``what`` names it
        (a batch item by its index: "Message 3")."""
        limit = self.limits.max_message_bytes
        if isinstance(text, str):
            if len(text) * 4 <= limit:  # no character takes more than 4 bytes: no need to count
                return
            size = len(text.encode())
        else:
            size = len(text)
        if size > limit:
            name = f"Message {what}" if isinstance(what, int) else what
            raise PayloadTooLarge(f"{name} has {size} bytes; the limit is {limit}.")

    async def post_batch(self, queue: Queue, document: Any) -> list[dict[str, Any]]:
        """Post ``{"messages": [...]}``: every item valid, or nothing stored."""
        if not isinstance(document, dict):
            raise InvalidJSON("The body must be a JSON object with a list of messages.")
        items = document.get("messages")
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict) and isinstance(item.get("body"), str):
                    self.check_size(item["body"], i)
        if items is None:
            raise ValidationError({"messages": "Required"})
        if not isinstance(items, list):
            raise ValidationError({"messages": "must be a list of messages"})
        if len(items) > MAX_POST_MESSAGES:
            raise ValidationError(
                {"messages": f"{len(items)} is greater than maximum value {MAX_POST_MESSAGES}"}
            )

        def parse(target: Queue) -> list[NewMessage]:
            errors: v.Errors = {}
            messages = [
                _fast(item, target) or parse_item(item, f"{i}.", errors, target)
                for i, item in enumerate(items)
            ]
            raise_if(errors)
            return [m for m in messages if m is not None]

        return await self._post(queue, parse)

    async def post_one(
        self,
        queue: Queue,
        body: bytes,
        content_type: str | None,
        ttl: str | None,
        partition: str | None,
        idempotency_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Post the request body as one message (``X-TTL``, ``X-Partition`` headers).

        ``idempotency_key``: the ``X-Idempotency-Key`` header (empty: not given).
        """
        self.check_size(body, "The message")

        def parse(target: Queue) -> list[NewMessage]:
            errors: v.Errors = {}
            message = NewMessage(
                _text(body, errors),
                content_type or "text/plain",
                v.integer(ttl, "ttl", errors, DEFAULT_TTL, 1, MAX_TTL),
                _partition(partition, "partition", errors, target),
                v.idempotency_key(idempotency_key or None, "idempotency_key", errors),
            )
            raise_if(errors)
            return [message]

        return await self._post(queue, parse)

    async def _post(self, queue: Queue, parse: Parse) -> list[dict[str, Any]]:
        async def store(target: Queue, messages: list[NewMessage]) -> list[dict[str, Any]]:
            if not messages:  # as the original: an empty batch stores nothing and succeeds
                return []
            posted = await self.storage.post_messages(target, messages)
            self.waiters.notify(target.handle, max(p.key for p in posted))
            return [posted_info(p) for p in posted]

        return await self._write(queue, parse, store)

    async def _write(
        self, queue: Queue, parse: Callable[[Queue], P], store: Callable[[Queue, P], Awaitable[R]]
    ) -> R:
        """Validate and store on ``queue``; once more on a fresh read if it changed."""
        try:
            parsed = parse(queue)
        except ValidationError as error:
            if not _about_partitions(error):
                raise
            fresh = await self.queues.fresh(queue.app, queue.name)
            if fresh.partitions == queue.partitions:
                raise
            queue, parsed = fresh, parse(fresh)
        try:
            return await store(queue, parsed)
        except QueueNotFound:
            self.queues.forget(queue.app, queue.name)
            raise
        except QueueChanged:
            fresh = await self.queues.fresh(queue.app, queue.name)
            return await store(fresh, parse(fresh))  # changed twice: 503 (core.errors)

    # -- reading -------------------------------------------------------------

    async def read(
        self, queue: Queue, query: Mapping[str, str], hold: bool = True
    ) -> list[dict[str, Any]]:
        """A range scan of one or more partitions, grouped in the order asked.

        With ``wait`` (and ``hold``: not for HEAD), a read that finds nothing
        is held until a message it would return is readable, ``wait``
        seconds pass or the server stops (then answered as it stands), or the
        queue is deleted (404). Held reads share the process's one wake-up
        mechanism (``core.waiters``).
        """
        errors: v.Errors = {}
        # HEAD ignores ``wait`` (SPEC §3): not even checked, as streams ignore it.
        wait = v.integer(query.get("wait"), "wait", errors, 0, 0, MAX_WAIT) if hold else 0
        limit = v.integer(query.get("limit"), "limit", errors, MAX_READ_LIMIT, 1, MAX_READ_LIMIT)
        order = v.choice(query.get("order"), "order", errors, "ascending", ORDERS)
        descending = order == "descending"
        since = self._since(query.get("since"), errors, descending)
        partitions: dict[int, None] = {}
        for item in (query.get("partitions") or "1").split(","):
            if item.strip():
                partitions[v.integer(item, "partitions", errors, 1, 0)] = None
        raise_if(errors)
        asked = [p for p in partitions if 1 <= p <= queue.partitions]

        async def scan() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for partition in asked:  # a partition the queue lacks has no messages (as the original)
                messages = await self.storage.read_range(queue, partition, since, limit, descending)
                found.extend(message_info(m) for m in messages)
            return found

        found = await scan()
        if found or not wait or not hold or not asked:
            return found
        deadline = time.monotonic() + wait
        async with self.waiters.watch(queue, "read") as watch:
            while True:
                # Reads of the same range since the last wake-up are shared (core.waiters).
                found = await watch.shared(("read", *asked, since, limit, descending), scan)
                if found:
                    return found
                if watch.gone:
                    self.queues.forget(queue.app, queue.name)
                    raise InvalidQueueName()
                left = deadline - time.monotonic()
                if left <= 0 or watch.closed:
                    return found
                await watch.wait(left)

    @staticmethod
    def _since(value: str | None, errors: v.Errors, descending: bool) -> MessageKey | None:
        if not value:
            return None
        if is_hex_id(value):
            return parse_id(value)  # a UUID of another version: InvalidMessageID
        ticks = parse_timestamp(value, round_up=not descending)
        if ticks is None:
            errors["since"] = f'"{v.clipped(value)}" is not a message id or a timestamp'
            return None
        return MessageKey(ticks, b"")

    # -- by id ---------------------------------------------------------------

    async def get_by_ids(self, queue: Queue, ids: str) -> list[dict[str, Any]]:
        keys = [(p, k) for p, k in parse_id_list(ids) if 1 <= p <= queue.partitions]
        return [message_info(m) for m in await self.storage.get_messages(queue, keys)]

    async def put_by_ids(
        self, queue: Queue, ids: str, body: bytes, content_type: str | None, ttl: str | None
    ) -> None:
        self.check_size(body, "The message")  # 413 comes before any 400, bad ids included
        keys = parse_id_list(ids)

        def parse(target: Queue) -> tuple[str, int]:
            errors: v.Errors = {}
            text = _text(body, errors)
            seconds = v.integer(ttl, "ttl", errors, DEFAULT_TTL, 1, MAX_TTL)
            for partition, _ in keys:
                if partition > target.partitions:
                    errors["partition"] = (
                        f"{v.shown_number(partition)} is greater than maximum value"
                        f" {target.partitions}"
                    )
                elif partition < 1:
                    errors["partition"] = (
                        f"{v.shown_number(partition)} is less than minimum value 1"
                    )
            raise_if(errors)
            return text, seconds

        async def store(target: Queue, parsed: tuple[str, int]) -> None:
            if keys:
                text, seconds = parsed
                await self.storage.put_messages(
                    target, keys, text, content_type or "text/plain", seconds
                )
                self.waiters.notify(target.handle, max(k for _, k in keys), stamped=False)

        await self._write(queue, parse, store)

    async def delete_by_ids(self, queue: Queue, ids: str) -> None:
        keys = [(p, k) for p, k in parse_id_list(ids) if 1 <= p <= queue.partitions]
        if keys:
            await self.storage.delete_messages(queue, keys)
