"""What a caller may do: the access rules of SPEC §2, over the principals of ``core.auth``.

``partitions``: the partitions a request touches (a range read's, a stream's,
a claim's). Scoped tokens (SPEC §8) grant rights on some partitions only;
the other credentials grant a queue whole, so callers pass what they know.
"""

from __future__ import annotations

from collections.abc import Collection

from queuey.core.auth import Principals
from queuey.storage.base import Queue


def is_owner(principals: Principals, app: str) -> bool:
    """May list, create, update and delete queues of ``app`` and post or put messages."""
    return f"app:{app}" in principals


def may_consume(principals: Principals, queue: Queue, partitions: Collection[int] = ()) -> bool:
    """May read and delete messages: the listed principals, else the owner."""
    listed = queue.settings.principles
    if listed:
        return any(p in principals for p in listed)
    return is_owner(principals, queue.app)


def may_read(principals: Principals, queue: Queue, partitions: Collection[int] = ()) -> bool:
    """May read messages: anyone on a public queue, else as :func:`may_consume`."""
    return queue.settings.type == "public" or may_consume(principals, queue, partitions)


def token_partitions(principals: Principals, queue: Queue) -> frozenset[int] | None:
    """The partitions of ``queue`` a scoped token limits the caller to; None: no limit.

    A stream or read without ``partitions`` takes the token's (SPEC §7/§8).
    """
    return None


def expires_at(principals: Principals) -> float | None:
    """When (Unix seconds) the first of the caller's expiring credentials ends; None: never.

    A stream ends when the token that opened it expires (SPEC §7).
    """
    return None
