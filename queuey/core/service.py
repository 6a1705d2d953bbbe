"""The queue service: the v1 operations on queues and messages, over any storage.

The HTTP layer resolves who calls, the application and the queue, checks
rights and body size, then calls one method here with the raw parameters. This
module validates them (reporting every invalid field at once), talks to
storage and returns plain dicts ready to be sent as JSON. Nothing is stored
unless the whole request is valid.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from queuey.core import validation as v
from queuey.core.errors import (
    InvalidJSON,
    InvalidQueueName,
    InvalidUpdate,
    PayloadTooLarge,
    ValidationError,
)
from queuey.core.ids import (
    format_id,
    format_timestamp,
    is_hex_id,
    parse_id,
    parse_id_list,
    parse_timestamp,
)
from queuey.storage.base import (
    CONSISTENCY_LEVELS,
    Message,
    NewMessage,
    Queue,
    QueueChanged,
    QueueNotFound,
    QueueSettings,
    Storage,
)
from queuey.storage.keys import MessageKey

DEFAULT_TTL = 259200  # 3 days
MAX_TTL = 2**25
MAX_PARTITIONS = 200
MAX_BATCH = 1000
PAGE_CAP = 1000
#: How long, and for how many queues, a queue read for a write may be reused.
CACHE_SECONDS = 2.0
CACHE_SIZE = 10_000
MAX_LIST = 1000
#: Choice lists in the order the original named them in its messages.
ORDERS = ("descending", "ascending")
TYPES = ("public", "user")


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 262144
    max_request_bytes: int = 8388608


def queue_info(queue: Queue) -> dict[str, Any]:
    s = queue.settings
    return {
        "queue_name": queue.name,
        "partitions": s.partitions,
        "type": s.type,
        "consistency": s.consistency,
        "principles": list(s.principles),
        "created": queue.created,
    }


def message_info(message: Message) -> dict[str, Any]:
    return {
        "message_id": format_id(message.key),
        "timestamp": format_timestamp(message.key.ts),
        "body": message.body,
        "partition": message.partition,
        "content_type": message.content_type,
    }


def _raise_if(errors: v.Errors) -> None:
    if errors:
        raise ValidationError(errors)


class QueueService:
    """The v1 operations. Callers have already checked access (see ``core.access``)."""

    def __init__(self, storage: Storage, limits: Limits | None = None) -> None:
        self.storage = storage
        self.limits = limits or Limits()
        self._recent: OrderedDict[tuple[str, str], tuple[float, Queue]] = OrderedDict()

    # -- queues ------------------------------------------------------------

    async def find_queue(self, app: str, name: str, *, for_writing: bool = False) -> Queue:
        """The queue, or :class:`InvalidQueueName` (404) when malformed or absent.

        ``for_writing`` may answer from a copy read less than ``CACHE_SECONDS``
        ago: posting and overwriting need only the owner's rights (not the
        queue's settings), and storage refuses such a write to a deleted queue
        (``QueueNotFound``) or with settings that changed since
        (``QueueChanged``), so a stale copy can never store wrongly. Reads and
        rights checks always read the store.
        """
        if v.QUEUE_NAME.fullmatch(name) is None:
            raise InvalidQueueName()
        if for_writing:
            hit = self._recent.get((app, name))
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        queue = await self.storage.get_queue(app, name)
        if queue is None:
            self.forget(app, name)
            raise InvalidQueueName()
        self._remember(queue)
        return queue

    def _remember(self, queue: Queue) -> None:
        self._recent[(queue.app, queue.name)] = (time.monotonic() + CACHE_SECONDS, queue)
        self._recent.move_to_end((queue.app, queue.name))
        if len(self._recent) > CACHE_SIZE:
            self._recent.popitem(last=False)

    def forget(self, app: str, name: str) -> None:
        self._recent.pop((app, name), None)

    async def list_queues(self, app: str, query: Mapping[str, str]) -> dict[str, Any]:
        errors: v.Errors = {}
        limit = v.integer(query.get("limit"), "limit", errors, 100, 1, MAX_LIST)
        details = v.boolean(query.get("details"), "details", errors)
        include_count = v.boolean(query.get("include_count"), "include_count", errors)
        details = details or include_count  # as the original: a count comes with details
        _raise_if(errors)
        offset = query.get("offset") or None
        page = await self.storage.list_queues(app, offset, limit + 1)
        following = page[limit].name if len(page) > limit else None
        items = []
        for queue in page[:limit]:
            item: dict[str, Any] = queue_info(queue) if details else {"queue_name": queue.name}
            if include_count:
                item["count"] = await self.storage.count_messages(queue)
            items.append(item)
        return {"status": "ok", "queues": items, "next": following}

    def _settings(
        self, body: Mapping[str, Any], errors: v.Errors, base: QueueSettings
    ) -> QueueSettings:
        partitions = v.integer(
            body.get("partitions"), "partitions", errors, base.partitions, 1, MAX_PARTITIONS
        )
        qtype = v.choice(body.get("type"), "type", errors, base.type, TYPES)
        consistency = v.choice(
            body.get("consistency"), "consistency", errors, base.consistency, CONSISTENCY_LEVELS
        )
        principles = base.principles
        if "principles" in body and body["principles"] is not None:
            principles = v.principles(body["principles"], "principles", errors)
        return QueueSettings(partitions, qtype, consistency, principles)

    async def create_queue(self, app: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create a queue; returns its settings and whether it is new (201) or existed (200)."""
        errors: v.Errors = {}
        name = v.queue_name(body.get("queue_name"), "queue_name", errors) or uuid.uuid4().hex
        settings = self._settings(body, errors, QueueSettings())
        _raise_if(errors)
        queue, created = await self.storage.create_queue(app, name, settings)
        self._remember(queue)
        return {"status": "ok", **queue_info(queue)}, created

    async def update_queue(self, queue: Queue, body: Mapping[str, Any]) -> dict[str, Any]:
        errors: v.Errors = {}
        settings = self._settings(body, errors, queue.settings)
        _raise_if(errors)
        if v.given(body.get("queue_name")) and body.get("queue_name") != queue.name:
            raise InvalidUpdate("A queue cannot be renamed.")
        if settings.partitions < queue.settings.partitions:
            raise InvalidUpdate(
                f"Partitions can only grow: the queue has {queue.settings.partitions}."
            )
        self.forget(queue.app, queue.name)
        updated = await self.storage.update_queue(queue, settings)
        return {"status": "ok", **queue_info(updated)}

    async def delete_queue(self, queue: Queue) -> None:
        self.forget(queue.app, queue.name)
        await self.storage.delete_queue(queue)

    # -- posting -------------------------------------------------------------

    def _check_size(self, text: str | bytes, what: str) -> None:
        size = len(text.encode()) if isinstance(text, str) else len(text)
        if size > self.limits.max_message_bytes:
            raise PayloadTooLarge(
                f"{what} has {size} bytes; the limit is {self.limits.max_message_bytes}."
            )

    @staticmethod
    def _partition(value: Any, key: str, errors: v.Errors, queue: Queue) -> int:
        if not v.given(value):
            return random.randint(1, queue.partitions)
        return v.integer(value, key, errors, 1, 1, queue.partitions)

    async def post_batch(self, queue: Queue, document: Any) -> list[dict[str, Any]]:
        """Post ``{"messages": [...]}``: every item valid, or nothing stored."""
        items = document.get("messages") if isinstance(document, dict) else None
        if not isinstance(document, dict):
            raise InvalidJSON("The body must be a JSON object with a list of messages.")
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict) and isinstance(item.get("body"), str):
                    self._check_size(item["body"], f"Message {i}")
        errors: v.Errors = {}
        if items is None:
            errors["messages"] = "Required"
        elif not isinstance(items, list):
            errors["messages"] = "must be a list of messages"
        elif len(items) > MAX_BATCH:
            errors["messages"] = f"{len(items)} is greater than maximum value {MAX_BATCH}"
        if errors:
            raise ValidationError(errors)
        assert isinstance(items, list)
        messages = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errors[str(i)] = "must be an object with a body"
                continue
            body = item.get("body")
            if body is None or body == "":
                errors[f"{i}.body"] = "Required"
            elif not isinstance(body, str):
                errors[f"{i}.body"] = "must be a string"
            ttl = v.integer(item.get("ttl"), f"{i}.ttl", errors, DEFAULT_TTL, 1, MAX_TTL)
            partition = self._partition(item.get("partition"), f"{i}.partition", errors, queue)
            content_type = item.get("content_type")
            if content_type is None or content_type == "":
                content_type = "text/plain"
            elif not isinstance(content_type, str):
                errors[f"{i}.content_type"] = "must be a string"
            if not errors and isinstance(body, str):
                messages.append(NewMessage(body, content_type, ttl, partition))
        _raise_if(errors)
        if not messages:  # as the original: an empty batch stores nothing and succeeds
            return []
        return await self._post(queue, messages)

    async def post_one(
        self,
        queue: Queue,
        body: bytes,
        content_type: str | None,
        ttl: str | None,
        partition: str | None,
    ) -> list[dict[str, Any]]:
        """Post the request body as one message (``X-TTL``, ``X-Partition`` headers)."""
        self._check_size(body, "The message")
        errors: v.Errors = {}
        text = self._text(body, errors)
        message = NewMessage(
            text,
            content_type or "text/plain",
            v.integer(ttl, "ttl", errors, DEFAULT_TTL, 1, MAX_TTL),
            self._partition(partition, "partition", errors, queue),
        )
        _raise_if(errors)
        return await self._post(queue, [message])

    @staticmethod
    def _text(body: bytes, errors: v.Errors) -> str:
        if not body:
            errors["body"] = "Required"
            return ""
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            errors["body"] = "The message body is not UTF-8 text."
            return ""

    async def _post(self, queue: Queue, messages: list[NewMessage]) -> list[dict[str, Any]]:
        try:
            keys = await self.storage.post_messages(queue, messages)
        except (QueueNotFound, QueueChanged):
            self.forget(queue.app, queue.name)
            raise
        return [
            {"key": format_id(k), "timestamp": format_timestamp(k.ts), "partition": m.partition}
            for k, m in zip(keys, messages, strict=True)
        ]

    # -- reading -------------------------------------------------------------

    async def read(self, queue: Queue, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """A range scan of one or more partitions, grouped in the order asked."""
        errors: v.Errors = {}
        limit = v.integer(query.get("limit"), "limit", errors, PAGE_CAP, 1, PAGE_CAP)
        order = v.choice(query.get("order"), "order", errors, "ascending", ORDERS)
        descending = order == "descending"
        since = self._since(query.get("since"), errors, descending)
        partitions: dict[int, None] = {}
        for item in (query.get("partitions") or "1").split(","):
            if item.strip():
                partitions[v.integer(item, "partitions", errors, 1, 0)] = None
        _raise_if(errors)
        found: list[dict[str, Any]] = []
        for partition in partitions:
            if not 1 <= partition <= queue.partitions:
                continue  # as the original: a partition the queue lacks has no messages
            messages = await self.storage.read_range(queue, partition, since, limit, descending)
            found.extend(message_info(m) for m in messages)
        return found

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

    async def get_by_ids(self, queue: Queue, ids: str) -> list[dict[str, Any]]:
        keys = [(p, k) for p, k in parse_id_list(ids) if 1 <= p <= queue.partitions]
        return [message_info(m) for m in await self.storage.get_messages(queue, keys)]

    async def put_by_ids(
        self, queue: Queue, ids: str, body: bytes, content_type: str | None, ttl: str | None
    ) -> None:
        self._check_size(body, "The message")  # 413 comes before any 400, bad ids included
        keys = parse_id_list(ids)
        errors: v.Errors = {}
        text = self._text(body, errors)
        seconds = v.integer(ttl, "ttl", errors, DEFAULT_TTL, 1, MAX_TTL)
        for partition, _ in keys:
            if not 1 <= partition <= queue.partitions:
                errors["partition"] = (
                    f"{v.shown_number(partition)} is greater than maximum value {queue.partitions}"
                    if partition > queue.partitions
                    else f"{v.shown_number(partition)} is less than minimum value 1"
                )
        _raise_if(errors)
        if keys:
            try:
                await self.storage.put_messages(
                    queue, keys, text, content_type or "text/plain", seconds
                )
            except (QueueNotFound, QueueChanged):
                self.forget(queue.app, queue.name)
                raise

    async def delete_by_ids(self, queue: Queue, ids: str) -> None:
        keys = [(p, k) for p, k in parse_id_list(ids) if 1 <= p <= queue.partitions]
        if keys:
            await self.storage.delete_messages(queue, keys)
