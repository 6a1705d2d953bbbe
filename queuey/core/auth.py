"""Who is calling: authenticators in a chain, one per credential scheme.

An ``Authorization`` header may carry several credentials, ``Scheme cred;
Scheme cred`` (several headers count as one joined with ``;``). Each
authenticator returns the principal of a credential of its scheme, or raises
when the credential is of its scheme but invalid; schemes no authenticator
claims are ignored. Authenticators are async: some will fetch keys (JWKS).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Protocol

from queuey.core.errors import InvalidApplicationKey

Principals = frozenset[str]
ANONYMOUS: Principals = frozenset()


class Authenticator(Protocol):
    scheme: str
    """The scheme this authenticator claims, lowercase."""

    async def principal(self, credential: str) -> str:
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

    async def principal(self, credential: str) -> str:
        given = hashlib.sha256(credential.encode()).digest()
        found: str | None = None
        for digest, app in self._digests:
            if hmac.compare_digest(digest, given):
                found = app
        if found is None:
            raise InvalidApplicationKey()
        return f"app:{found}"


class Authentication:
    """The chain: every principal an ``Authorization`` header proves."""

    def __init__(self, chain: Iterable[Authenticator]) -> None:
        self._by_scheme = {a.scheme: a for a in chain}

    async def principals(self, header: str | None) -> Principals:
        if not header:
            return ANONYMOUS
        found = set()
        for part in header.split(";"):
            scheme, _, credential = part.strip().partition(" ")
            authenticator = self._by_scheme.get(scheme.lower())
            if authenticator is not None:
                found.add(await authenticator.principal(credential.strip()))
        return frozenset(found)
