"""Queues: creating, updating, deleting and listing them, and finding one for a request.

Writes (posting, overwriting by id) may use a copy of the queue read less
than ``cache_seconds`` ago: they need only the owner's rights, not the queue's
settings, and storage refuses a write to a deleted queue (``QueueNotFound``) or
with settings that changed since (``QueueChanged``), so a stale copy can never
store wrongly — the message path reads the queue again and retries once.
Everything else reads the store.

Quotas (SPEC §9): an application with ``max_queues`` may not create a queue
past it (403 ``QuotaExceeded``, after validation); creating one that exists
is answered as always. The count is the store's listing, taken under a lock
per application, so creations through one process never pass the quota;
creations racing in several processes at once may pass it by one each.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from queuey.core import validation as v
from queuey.core.errors import InvalidQueueName, InvalidUpdate, QuotaExceeded, ValidationError
from queuey.storage.base import Queue, QueueSettings, Storage

# Queue is re-exported: the HTTP layer names it without importing storage.
__all__ = ["Queue", "Queues", "queue_info", "raise_if"]

MAX_PARTITIONS = 200
MAX_LIST = 1000
#: Choice lists in the order the original named them in its messages.
TYPES = ("public", "user")
CONSISTENCIES = ("weak", "strong", "very_strong")


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


def raise_if(errors: v.Errors) -> None:
    if errors:
        raise ValidationError(errors)


class Queues:
    """The queues of every application, over one store."""

    def __init__(self, storage: Storage, cache_seconds: float, cache_size: int) -> None:
        self.storage = storage
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._recent: OrderedDict[tuple[str, str], tuple[float, Queue]] = OrderedDict()
        #: Most queues per application (absent or 0: no limit), set by whoever wires the service.
        self.max_queues: Mapping[str, int] = {}
        self._creating: dict[str, asyncio.Lock] = {}
        #: Called with a deleted queue's handle (the service wakes its waiters with it).
        self.on_delete: Callable[[str], None] | None = None

    async def find(self, app: str, name: str, *, for_writing: bool = False) -> Queue:
        """The queue, or :class:`InvalidQueueName` (404) when malformed or absent.

        ``for_writing`` may answer from the cache (see the module's docstring).
        """
        if v.QUEUE_NAME.fullmatch(name) is None:
            raise InvalidQueueName()
        if for_writing and self.cache_seconds > 0:
            hit = self._recent.get((app, name))
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        return await self.fresh(app, name)

    async def fresh(self, app: str, name: str) -> Queue:
        """The queue as stored now (and remembered for writes)."""
        queue = await self.storage.get_queue(app, name)
        if queue is None:
            self.forget(app, name)
            raise InvalidQueueName()
        self._remember(queue)
        return queue

    def _remember(self, queue: Queue) -> None:
        if self.cache_seconds <= 0:
            return
        key = (queue.app, queue.name)
        self._recent[key] = (time.monotonic() + self.cache_seconds, queue)
        self._recent.move_to_end(key)
        if len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)

    def forget(self, app: str, name: str) -> None:
        self._recent.pop((app, name), None)

    async def list(self, app: str, query: Mapping[str, str]) -> dict[str, Any]:
        errors: v.Errors = {}
        limit = v.integer(query.get("limit"), "limit", errors, 100, 1, MAX_LIST)
        details = v.boolean(query.get("details"), "details", errors)
        include_count = v.boolean(query.get("include_count"), "include_count", errors)
        details = details or include_count  # as the original: a count comes with details
        raise_if(errors)
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

    @staticmethod
    def _settings(body: Mapping[str, Any], errors: v.Errors, base: QueueSettings) -> QueueSettings:
        partitions = v.integer(
            body.get("partitions"), "partitions", errors, base.partitions, 1, MAX_PARTITIONS
        )
        qtype = v.choice(body.get("type"), "type", errors, base.type, TYPES)
        consistency = v.choice(
            body.get("consistency"), "consistency", errors, base.consistency, CONSISTENCIES
        )
        principles = base.principles
        if "principles" in body and body["principles"] is not None:
            principles = v.principles(body["principles"], "principles", errors)
        return QueueSettings(partitions, qtype, consistency, principles)

    async def create(self, app: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create a queue; returns its settings and whether it is new (201) or existed (200)."""
        errors: v.Errors = {}
        given = v.queue_name(body.get("queue_name"), "queue_name", errors)
        name = given or uuid.uuid4().hex
        settings = self._settings(body, errors, QueueSettings())
        raise_if(errors)
        most = self.max_queues.get(app, 0)
        if most > 0:
            lock = self._creating.setdefault(app, asyncio.Lock())
            async with lock:
                if not given or await self.storage.get_queue(app, name) is None:
                    await self._within_quota(app, most)
                queue, created = await self.storage.create_queue(app, name, settings)
        else:
            queue, created = await self.storage.create_queue(app, name, settings)
        self._remember(queue)
        return {"status": "ok", **queue_info(queue)}, created

    async def _within_quota(self, app: str, most: int) -> None:
        """403 ``QuotaExceeded`` when ``app`` has ``most`` queues already."""
        if len(await self.storage.list_queues(app, None, most)) >= most:
            raise QuotaExceeded(
                f"Application {app} has {most} queues, as many as it may have;"
                " delete one to create another."
            )

    async def update(self, queue: Queue, body: Mapping[str, Any]) -> dict[str, Any]:
        errors: v.Errors = {}
        settings = self._settings(body, errors, queue.settings)
        raise_if(errors)
        if v.given(body.get("queue_name")) and body.get("queue_name") != queue.name:
            raise InvalidUpdate("A queue cannot be renamed.")
        if settings.partitions < queue.settings.partitions:
            raise InvalidUpdate(
                f"Partitions can only grow: the queue has {queue.settings.partitions}."
            )
        self.forget(queue.app, queue.name)
        updated = await self.storage.update_queue(queue, settings)
        return {"status": "ok", **queue_info(updated)}

    async def delete(self, queue: Queue) -> None:
        self.forget(queue.app, queue.name)
        await self.storage.delete_queue(queue)
        if self.on_delete is not None:  # readers waiting on it answer 404 (core.waiters)
            self.on_delete(queue.handle)
