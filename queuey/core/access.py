"""What a caller may do: the access rules of SPEC §2 and §8, over the principals of ``core.auth``.

``partitions``: the partitions a request touches (a range read's, a stream's,
a claim's, the ids' of a read or delete by id). Applications and people hold
a queue whole; a scoped token (:class:`~queuey.core.auth.Grant`) holds one
queue incarnation, for its scope and partitions only. A request's rights are
the union of all its credentials' (SPEC §8): every partition it touches must
be held by some credential. No partitions: the queue as such (listing its
groups, reading a group's state), which any credential holding the queue
in the scope asked covers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from queuey.core.auth import Grant, Person, Principal, Principals
from queuey.core.oidc import LEEWAY
from queuey.core.validation import given, parse_integer
from queuey.storage.base import Queue


def is_owner(principals: Principals, app: str) -> bool:
    """May list, create, update and delete queues of ``app`` and post or put messages."""
    return f"app:{app}" in principals


def _names(principals: Iterable[Principal]) -> set[str]:
    """The principals that hold queues whole: applications and people, as in ``principles``."""
    names: set[str] = set()
    for p in principals:
        if isinstance(p, str):
            names.add(p)
        elif isinstance(p, Person):
            names.add(p.name)
    return names


def _listed(names: set[str], queue: Queue) -> bool:
    """Whether ``names`` hold ``queue`` by its rule: its ``principles``, else its owner."""
    listed = queue.settings.principles
    if not listed:
        return f"app:{queue.app}" in names
    # A person's name is already lower-cased: bid: entries compare case-insensitively.
    return any((p.lower() if p.startswith("bid:") else p) in names for p in listed)


def _grants(principals: Principals, queue: Queue, consume: bool) -> list[Grant]:
    """The scoped tokens of the request that hold ``queue`` (this incarnation) in the scope.

    A token never grants more than its minter has (SPEC §8), now as when it was
    minted: its minters must still hold the queue for its scope by the queue's
    current rules (so changing ``principles`` revokes the tokens minted by
    whoever it removes; a read token minted on a public queue lasts while the
    queue is public or its minters may read it otherwise).
    """
    return [
        g
        for g in principals
        if isinstance(g, Grant)
        and (g.app, g.queue, g.handle) == (queue.app, queue.name, queue.handle)
        and (g.consume or not consume)
        and ((not g.consume and queue.settings.type == "public") or _listed(set(g.minters), queue))
    ]


def _covered(grants: list[Grant], partitions: Collection[int]) -> bool:
    if not grants:
        return False
    if any(g.partitions is None for g in grants):
        return True
    held = frozenset().union(*(g.partitions for g in grants if g.partitions is not None))
    return all(p in held for p in partitions)


def may_consume(principals: Principals, queue: Queue, partitions: Collection[int] = ()) -> bool:
    """May delete messages and consume in groups: the listed principals, else the owner;
    or scoped tokens of scope ``consume`` on this queue holding every partition touched."""
    if _listed(_names(principals), queue):
        return True
    return _covered(_grants(principals, queue, consume=True), partitions)


def may_read(principals: Principals, queue: Queue, partitions: Collection[int] = ()) -> bool:
    """May read messages: anyone on a public queue, else as :func:`may_consume`, where a
    scoped token of scope ``read`` is enough."""
    if queue.settings.type == "public" or _listed(_names(principals), queue):
        return True
    return _covered(_grants(principals, queue, consume=False), partitions)


def token_partitions(
    principals: Principals, queue: Queue, *, consume: bool = False
) -> frozenset[int] | None:
    """The partitions of ``queue`` a scoped token limits the caller to; None: no limit.

    A stream, or a claim, without ``partitions`` takes the token's (SPEC §7/§8).
    No limit when the queue is public (for reading) or another credential holds
    it whole; an empty set when nothing of the request holds the queue.
    ``consume``: the limit for consuming (tokens of scope ``read`` do not count).
    """
    if not consume and queue.settings.type == "public":
        return None
    if _listed(_names(principals), queue):
        return None
    grants = _grants(principals, queue, consume)
    if any(g.partitions is None for g in grants):
        return None
    return frozenset().union(*(g.partitions for g in grants if g.partitions is not None))


def expires_at(principals: Principals) -> float | None:
    """When (Unix seconds) the first of the caller's expiring credentials ends; None: never.

    A stream ends when the token that opened it expires (SPEC §7); a token
    minted never outlives the person's JWT that minted it (SPEC §8).
    """
    ends = [p.expires for p in principals if isinstance(p, Person | Grant)]
    return min(ends) if ends else None


def minter_names(principals: Principals) -> list[str]:
    """The names a token minted by ``principals`` carries (applications and people)."""
    return sorted(_names(principals))


def accepted_until(principals: Principals) -> float | None:
    """When (Unix seconds) the server stops accepting the first of the caller's expiring
    credentials: a scoped token at its exp, a person's JWT at its exp plus the leeway
    it is verified with. None: never. A stream ends then (SPEC §7) — not earlier, or
    a browser holding a JWT within its leeway would reconnect to a stream that ends at once.
    """
    ends = [
        p.expires + (LEEWAY if isinstance(p, Person) else 0)
        for p in principals
        if isinstance(p, Person | Grant)
    ]
    return min(ends) if ends else None


def minters(principals: Principals) -> Principals:
    """The principals that may mint scoped tokens: all but scoped tokens (SPEC §8)."""
    return frozenset(p for p in principals if not isinstance(p, Grant))


def partitions_asked(value: object, default: Collection[int] = ()) -> frozenset[int]:
    """The partitions a ``partitions`` value names (a comma-separated string or a list), for
    the rights check that comes before validation (SPEC §2): items that are not
    numbers are left to validation (400). Not given: ``default``."""
    if not given(value):
        return frozenset(default)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return frozenset()
    found = (parse_integer(item) for item in items)
    return frozenset(n for n in found if n is not None)
