"""``Authorization: Bearer <token>`` (and ``access_token=``): a person's JWT or a scoped token.

Both are JWTs. A scoped token is signed with HMAC (``core.tokens``); an
issuer never is (the configuration refuses HMAC and ``none`` for issuers),
so the algorithm the unverified header names picks the verifier, and each
verifier then checks everything itself: a token dressed as the other kind
fails its signature check.
"""

from __future__ import annotations

import jwt

from queuey.core.auth import Grant, Person
from queuey.core.errors import InvalidToken
from queuey.core.oidc import People
from queuey.core.tokens import ScopedTokens


class BearerTokens:
    """The ``bearer`` link of the authenticator chain."""

    scheme = "bearer"

    def __init__(self, tokens: ScopedTokens, people: People) -> None:
        self.tokens = tokens
        self.people = people

    async def principal(self, credential: str) -> Person | Grant:
        if not credential:
            raise InvalidToken("The bearer token is empty.")
        try:
            alg = jwt.get_unverified_header(credential).get("alg")
        except jwt.PyJWTError:
            raise InvalidToken("The bearer token is not a JWT.") from None
        if isinstance(alg, str) and alg.upper().startswith("HS"):
            return self.tokens.verify(credential)
        if not self.people.issuers:
            raise InvalidToken("No OpenID Connect issuer is configured here ([[auth.issuers]]).")
        return await self.people.person(credential)
