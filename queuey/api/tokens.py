"""POST /v1/{app}/{queue}/tokens: minting scoped tokens (SPEC §8).

Checks in the contract's order: 401 → unknown application (404) → unknown
queue (404) → rights (403: the caller's credentials other than scoped tokens
must let it read the queue) → rate limit (429) → body size (413) →
validation (400) → the rights the body asks for (403: ``consume`` needs the
right to consume) → ``[auth] token_secret`` (403 naming it when there is none).
"""

from __future__ import annotations

import time

from queuey.api.http import Request, Response, json_response
from queuey.api.routes import V1
from queuey.api.routing import Route, route
from queuey.core.access import expires_at, may_consume, may_read, minter_names, minters
from queuey.core.errors import AccessDenied, InvalidToken
from queuey.core.tokens import ScopedTokens, expiry, parse_request

NO_SECRET = (
    "This server mints no tokens: it has no [auth] token_secret "
    "(queuey init writes one; see docs/people.md)."
)


class TokenRoutes:
    """The tokens endpoint, sharing the v1 endpoints' resolution of caller and queue."""

    def __init__(self, v1: V1, tokens: ScopedTokens) -> None:
        self.v1 = v1
        self.tokens = tokens

    async def mint(self, request: Request) -> Response:
        principals, queue = await self.v1.queue(request)
        # A token never mints (SPEC §8): only the request's other credentials count.
        own = minters(principals)
        self.v1.grant(request, bool(own) and may_read(own, queue))
        fields = await self.v1.fields(request)
        ttl, consume, partitions = parse_request(fields, queue)
        if consume and not may_consume(own, queue):
            raise AccessDenied()
        if not self.tokens.enabled:
            raise AccessDenied(NO_SECRET)
        now = time.time()
        # Never outliving the credential that mints it: a person's JWT ends at its exp.
        expires, expires_in = expiry(now, ttl, expires_at(own))
        if expires_in < 1:
            raise InvalidToken("The credential minting this token expires within a second.")
        token = self.tokens.mint(queue, consume, partitions, expires, minter_names(own))
        scope = ["read", "consume"] if consume else ["read"]
        answer = {"status": "ok", "token": token, "expires_in": expires_in, "scope": scope}
        return json_response(answer, 201)

    def routes(self) -> list[Route]:
        return [route("/v1/{app}/{queue}/tokens", post=self.mint)]
