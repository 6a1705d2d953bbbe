"""What a caller may do: the access rules of SPEC §2, over the principals of ``core.auth``."""

from __future__ import annotations

from queuey.core.auth import Principals
from queuey.storage.base import Queue


def is_owner(principals: Principals, app: str) -> bool:
    """May list, create, update and delete queues of ``app`` and post or put messages."""
    return f"app:{app}" in principals


def may_consume(principals: Principals, queue: Queue) -> bool:
    """May read and delete messages: the listed principals, else the owner."""
    listed = queue.settings.principles
    if listed:
        return any(p in principals for p in listed)
    return is_owner(principals, queue.app)


def may_read(principals: Principals, queue: Queue) -> bool:
    """May read messages: anyone on a public queue, else as :func:`may_consume`."""
    return queue.settings.type == "public" or may_consume(principals, queue)
