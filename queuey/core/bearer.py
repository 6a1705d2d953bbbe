"""``Authorization: Bearer <token>`` (and ``access_token=``): a person's JWT or a scoped token.

Both are JWTs. A scoped token is signed with HMAC (``core.tokens``); an
issuer never is (the configuration refuses HMAC and ``none`` for issuers),
so the algorithm the unverified header names picks the verifier, and each
verifier then checks everything itself: a token dressed as the other kind
fails its signature check.

Verifying costs a few hundred microseconds (PyJWT parses and checks every
segment), and a browser sends the same token with every request: tokens
verified are remembered (:data:`REMEMBERED`, least recently used first out)
for as long as the answer holds — a scoped token until it expires, a
person's until it expires or the issuer's keys are fetched again (so a key
no longer published is not trusted from memory either).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import jwt

from queuey.core.auth import Grant, Person
from queuey.core.errors import InvalidToken
from queuey.core.oidc import People
from queuey.core.tokens import ScopedTokens

#: Tokens whose verification is remembered, per process.
REMEMBERED = 10_000


class BearerTokens:
    """The ``bearer`` link of the authenticator chain."""

    scheme = "bearer"

    def __init__(self, tokens: ScopedTokens, people: People, remembered: int = REMEMBERED) -> None:
        self.tokens = tokens
        self.people = people
        self._remembered = remembered
        self._known: OrderedDict[str, tuple[Person | Grant, Callable[[], bool]]] = OrderedDict()

    async def principal(self, credential: str) -> Person | Grant:
        known = self._known.get(credential)
        if known is not None:
            principal, holds = known
            if holds():
                self._known.move_to_end(credential)
                return principal
            del self._known[credential]
        principal, holds = await self._verify(credential)
        self._known[credential] = (principal, holds)
        if len(self._known) > self._remembered:
            self._known.popitem(last=False)
        return principal

    async def _verify(self, credential: str) -> tuple[Person | Grant, Callable[[], bool]]:
        if not credential:
            raise InvalidToken("The bearer token is empty.")
        try:
            alg = jwt.get_unverified_header(credential).get("alg")
        except jwt.PyJWTError:
            raise InvalidToken("The bearer token is not a JWT.") from None
        if isinstance(alg, str) and alg.upper().startswith("HS"):
            grant = self.tokens.verify(credential)
            return grant, lambda: time.time() < grant.expires  # no leeway (SPEC §8)
        if not self.people.issuers:
            raise InvalidToken("No OpenID Connect issuer is configured here ([[auth.issuers]]).")
        return await self.people.verified(credential)
