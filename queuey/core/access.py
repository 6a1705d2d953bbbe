"""Who is calling (authenticators in a chain) and what they may do (access rules).

An ``Authorization`` header may carry several credentials, ``Scheme cred;
Scheme cred``. Each authenticator returns the principal of a credential of its
scheme, or raises when the credential is of its scheme but invalid; schemes no
authenticator claims are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Protocol

from queuey.core.errors import InvalidApplicationKey
from queuey.storage.base import Queue

Principals = frozenset[str]
ANONYMOUS: Principals = frozenset()


class Authenticator(Protocol):
    scheme: str
    """The scheme this authenticator claims, lowercase."""

    def principal(self, credential: str) -> str:
        """The principal behind ``credential``; raise a QueueyError if it is invalid."""


class ApplicationKeys:
    """``Authorization: Application <key>`` gives principal ``app:<name>``.

    Keys are kept as SHA-256 digests (configured plain or as ``sha256:<hex>``)
    and every configured digest is compared in constant time, so neither the
    key's content nor which application matched shows in the timing.
    """

    scheme = "application"

    def __init__(self, keys: Mapping[str, Iterable[str]]) -> None:
        self._digests: list[tuple[bytes, str]] = []
        for app, app_keys in keys.items():
            for key in app_keys:
                if key.startswith("sha256:"):
                    digest = bytes.fromhex(key[len("sha256:") :])
                else:
                    digest = hashlib.sha256(key.encode()).digest()
                self._digests.append((digest, app))

    def principal(self, credential: str) -> str:
        given = hashlib.sha256(credential.encode()).digest()
        found: str | None = None
        for digest, app in self._digests:
            if hmac.compare_digest(digest, given):
                found = app
        if found is None:
            raise InvalidApplicationKey()
        return f"app:{found}"


def authenticate(header: str | None, chain: Iterable[Authenticator]) -> Principals:
    """All principals of an ``Authorization`` header (empty when there is none)."""
    if not header:
        return ANONYMOUS
    by_scheme = {a.scheme: a for a in chain}
    found = set()
    for part in header.split(";"):
        scheme, _, credential = part.strip().partition(" ")
        authenticator = by_scheme.get(scheme.lower())
        if authenticator is not None:
            found.add(authenticator.principal(credential.strip()))
    return frozenset(found)


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
