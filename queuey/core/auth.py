"""Who is calling: authenticators in a chain, one per credential scheme.

An ``Authorization`` header may carry several credentials, ``Scheme cred;
Scheme cred`` (several headers count as one joined with ``;``). Each
authenticator returns the principal of a credential of its scheme, or raises
when the credential is of its scheme but invalid; schemes no authenticator
claims are ignored. Authenticators are async: some fetch keys (JWKS).

A principal is one of three things (SPEC §2, §8):

- ``"app:NAME"``, a string: an application, by its key;
- :class:`Person`: a person with a verified e-mail address (``bid:EMAIL``),
  from an OpenID Connect issuer's JWT, until that JWT expires;
- :class:`Grant`: a scoped token's rights on one queue incarnation.

So ``"app:NAME" in principals`` stays the owner check, and the access rules
(``core.access``) look inside the other two.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from queuey.core.errors import InvalidApplicationKey


@dataclass(frozen=True, slots=True)
class Person:
    """A person: ``name`` is ``bid:`` and the lower-cased e-mail; ``expires``: Unix seconds."""

    name: str
    expires: float


@dataclass(frozen=True, slots=True)
class Grant:
    """What a scoped token allows (SPEC §8): read, or read and consume, one queue incarnation.

    ``partitions`` None means every partition, including ones added later.
    ``expires``: Unix seconds, after which the token is refused.
    """

    app: str
    queue: str
    handle: str
    consume: bool
    partitions: frozenset[int] | None
    expires: float
    minters: frozenset[str] = frozenset()
    """The names (``app:NAME``, ``bid:EMAIL``) of the credentials that minted it."""


Principal = str | Person | Grant
Principals = frozenset[Principal]
ANONYMOUS: Principals = frozenset()


class Authenticator(Protocol):
    scheme: str
    """The scheme this authenticator claims, lowercase."""

    async def principal(self, credential: str) -> Principal:
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
    """The chain: every principal the credentials of a request prove."""

    def __init__(self, chain: Iterable[Authenticator]) -> None:
        self._by_scheme = {a.scheme: a for a in chain}
        self._order = {scheme: i for i, scheme in enumerate(self._by_scheme)}

    async def principals(self, header: str | None, access_token: str | None = None) -> Principals:
        """The principals of an ``Authorization`` header and an ``access_token`` parameter.

        ``access_token`` (SPEC §2: GET and HEAD only, the caller decides) is one
        bearer credential taken whole, never split at ``;``.
        """
        given: list[tuple[int, Authenticator, str]] = []
        for part in (header or "").split(";"):
            scheme, _, credential = part.strip().partition(" ")
            authenticator = self._by_scheme.get(scheme.lower())
            if authenticator is not None:
                given.append((self._order[scheme.lower()], authenticator, credential.strip()))
        bearer = self._by_scheme.get("bearer")
        if access_token and bearer is not None:
            given.append((self._order["bearer"], bearer, access_token.strip()))
        # In the chain's order (stable): an unknown application key is reported as such
        # whatever bearer tokens come before it, and costs no key fetch.
        given.sort(key=lambda item: item[0])
        return frozenset([await a.principal(credential) for _, a, credential in given])
