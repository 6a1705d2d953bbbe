"""The service: everything the HTTP layer calls, over one store."""

from __future__ import annotations

from queuey.config import DEFAULTS
from queuey.core.errors import StorageUnavailable, from_storage
from queuey.core.groups import Groups
from queuey.core.messages import Limits, Messages
from queuey.core.queues import Queues
from queuey.storage.base import Storage


class QueueService:
    """Queues and messages of every application, over ``storage``.

    Callers have already checked access (``core.access``); the storage's
    lifecycle (start, close) belongs to whoever wires the app together.
    """

    def __init__(
        self,
        storage: Storage,
        limits: Limits | None = None,
        cache_seconds: float = DEFAULTS["queue_cache_seconds"],
        cache_size: int = DEFAULTS["queue_cache_size"],
        max_in_flight: int = DEFAULTS["max_in_flight"],
    ) -> None:
        self.storage = storage
        self.limits = limits or Limits()
        self.queues = Queues(storage, cache_seconds=cache_seconds, cache_size=cache_size)
        self.messages = Messages(storage, self.queues, self.limits)
        self.groups = Groups(storage, self.queues, self.messages, max_in_flight)
        self.queues.on_delete = self.messages.waiters.gone

    async def ping(self) -> None:
        """Return if the store answers; :class:`StorageUnavailable` (503) naming why if not."""
        try:
            await self.storage.ping()
        except Exception as exc:
            error = from_storage(exc)
            if error is None:
                raise
            raise StorageUnavailable(f"The message store does not answer: {exc}") from None
