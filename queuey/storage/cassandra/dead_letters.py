"""Dead letters of Cassandra groups: messages that reached max_deliveries, posted or dropped.

Dead letters are posted before the window change that marks them dead, with
an idempotency key of (group, partition, seek epoch, message): a change
applied again after a lost race posts nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

from queuey.storage import window as w
from queuey.storage.base import (
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueChanged,
    QueueNotFound,
    StoreUnavailable,
)
from queuey.storage.cassandra.queues import Queues
from queuey.storage.groups import DEAD_LETTER_TTL, Group
from queuey.storage.keys import MessageKey

#: The store's ``post_messages`` (checks the queue, idempotency keys).
Post = Callable[[Queue, Sequence[NewMessage]], Awaitable[list[Posted]]]


def _dead_key(group: Group, partition: int, epoch: int, key: MessageKey) -> str:
    """The idempotency key of a dead letter: one post per message and seek epoch."""
    return f"dead:{group.handle}:{partition}:{epoch}:{key.ts:x}:{key.tail.hex()}"


class DeadLetters:
    """Burying the messages a window change marks dead (a part of ``groups.Groups``)."""

    _queues: Queues
    _post: Post

    async def _bury(
        self,
        group: Group,
        window: w.Window,
        partition: int,
        doomed: dict[MessageKey, Message | None],
    ) -> None:
        """Post messages that reached max_deliveries to the dead letter queue, or drop them."""
        if not doomed:
            return
        found = {key: m for key, m in doomed.items() if m is not None}
        lettered = 0
        if group.settings.dead_letter_queue and found:
            lettered = await self._letter(group, window.epoch, partition, found)
        w.dead(window, lettered, lettered=True)
        w.dead(window, len(doomed) - lettered, lettered=False)

    async def _letter(
        self, group: Group, epoch: int, partition: int, found: dict[MessageKey, Message]
    ) -> int:
        name = group.settings.dead_letter_queue
        assert name is not None
        for _ in range(2):
            target = await self._queues.get(group.queue.app, name)
            if target is None:
                return 0
            letters = [
                NewMessage(
                    m.body,
                    m.content_type,
                    DEAD_LETTER_TTL,
                    random.randint(1, target.partitions),
                    _dead_key(group, partition, epoch, key),
                )
                for key, m in found.items()
            ]
            try:
                await self._post(target, letters)
            except QueueNotFound:
                return 0
            except QueueChanged:
                continue
            return len(letters)
        raise StoreUnavailable("the dead letter queue kept changing; try again")
