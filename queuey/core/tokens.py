"""Scoped tokens (SPEC §8): minted for one queue incarnation, a scope, some partitions, a time.

A token is a JWT signed with HMAC-SHA256 (PyJWT) under a key derived from
``[auth] token_secret``: the first secret configured signs, every one
verifies (rotation: put the new secret first, drop the old one once the
tokens it signed have expired). Its claims name the application, the queue,
the queue's incarnation (``Queue.handle``: a queue deleted and created again
does not honour the old one's tokens), the scope, the partitions (absent:
all, including ones added later), the minter's names (``by``: its applications
and people; a token works only while they still hold the rights it grants,
so changing a queue's ``principles`` revokes the tokens its former readers
minted) and the expiry — to the millisecond, so a token of ``ttl`` seconds
ends ``ttl`` seconds after it was minted, checked with no leeway.
Tokens are signed, not encrypted: their holder can read these claims.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jwt

from queuey.core import validation as v
from queuey.core.auth import Grant
from queuey.core.errors import AccessDenied, InvalidToken, ValidationError
from queuey.storage.base import Queue

#: The ``iss`` of Queuey's own tokens (an OIDC issuer is a URL and never signs with HMAC).
ISSUER = "queuey"
ALGORITHM = "HS256"
DEFAULT_TTL = 3600
MAX_TTL = 86400
SCOPES = ("read", "consume")


def _signing_key(secret: str) -> bytes:
    """A 256-bit HMAC key from a configured secret of any length, for this use only."""
    return hashlib.sha256(b"queuey scoped token\0" + secret.encode()).digest()


class ScopedTokens:
    """Mints and verifies scoped tokens; without a secret it does neither (SPEC §8)."""

    def __init__(self, secrets: Sequence[str], clock: Callable[[], float] = time.time) -> None:
        self._keys = [_signing_key(s) for s in secrets]
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def mint(
        self,
        queue: Queue,
        consume: bool,
        partitions: Collection[int] | None,
        expires: float,
        by: Collection[str],
    ) -> str:
        """A token for ``queue`` until ``expires`` (Unix seconds), minted by the names ``by``."""
        if not self._keys:
            raise AccessDenied("No token_secret is configured ([auth] token_secret).")
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "app": queue.app,
            "queue": queue.name,
            "inc": queue.handle,
            "scope": "consume" if consume else "read",
            "iat": int(self._clock()),
            "exp": round(expires, 3),
            "by": sorted(by),
        }
        if partitions is not None:
            claims["partitions"] = sorted(partitions)
        return jwt.encode(claims, self._keys[0], algorithm=ALGORITHM)

    def verify(self, token: str) -> Grant:
        """The rights of ``token``; :class:`InvalidToken` if it is tampered with or expired."""
        if not self._keys:
            raise InvalidToken("This server has no token_secret: it accepts no scoped tokens.")
        expired = False
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    issuer=ISSUER,
                    # exp is checked here: PyJWT reads it as a whole second (int()),
                    # which would end a token up to a second early; and it accepts
                    # an exp equal to now, where a token is over at its exp.
                    options={"require": ["exp", "iss"], "verify_iat": False, "verify_exp": False},
                )
            except jwt.InvalidSignatureError:
                continue  # signed with another of the secrets, or tampered with
            except jwt.PyJWTError as exc:
                raise InvalidToken(f"The scoped token is not valid: {exc}.") from None
            exp = claims["exp"]
            if not isinstance(exp, int | float) or isinstance(exp, bool):
                raise InvalidToken("The scoped token's exp is not a number.")
            if self._clock() >= exp:
                expired = True
                break
            return _grant(claims)
        if expired:
            raise InvalidToken("The scoped token has expired.")
        raise InvalidToken("The scoped token's signature is not valid.")


def _grant(claims: Mapping[str, Any]) -> Grant:
    app, queue, handle = claims.get("app"), claims.get("queue"), claims.get("inc")
    scope, partitions, by = claims.get("scope"), claims.get("partitions"), claims.get("by")
    valid = (
        all(isinstance(x, str) for x in (app, queue, handle))
        and isinstance(by, list)
        and all(isinstance(name, str) for name in by)
        and scope in SCOPES
        and (
            partitions is None
            or (isinstance(partitions, list) and all(type(p) is int for p in partitions))
        )
    )
    if not valid:  # signed with our key, so only a bug or a leaked secret gets here
        raise InvalidToken("The scoped token's claims are not those of a Queuey token.")
    return Grant(
        app=str(app),
        queue=str(queue),
        handle=str(handle),
        consume=scope == "consume",
        partitions=None if partitions is None else frozenset(partitions),
        expires=float(claims["exp"]),
        minters=frozenset(str(name) for name in by or ()),
    )


def parse_request(
    fields: Mapping[str, Any], queue: Queue
) -> tuple[int, bool, frozenset[int] | None]:
    """``ttl``, whether ``consume`` is asked, and the partitions (None: all) of a minting body.

    ``scope``: a string (items separated by commas or spaces) or a list of
    ``read`` and ``consume``; ``partitions``: a list or a comma-separated
    string, each 1..the queue's partitions. Every invalid field reported at once.
    """
    errors: v.Errors = {}
    ttl = v.integer(fields.get("ttl"), "ttl", errors, DEFAULT_TTL, 1, MAX_TTL)
    consume = False
    scope = fields.get("scope")
    if v.given(scope):
        items: Any = scope.replace(",", " ").split() if isinstance(scope, str) else scope
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            errors["scope"] = "must be a string or a list of strings"
        else:
            for item in items:
                if item.strip() not in SCOPES:
                    errors["scope"] = f'"{v.clipped(item)}" is not one of {", ".join(SCOPES)}'
                elif item.strip() == "consume":
                    consume = True
    partitions = _partitions(fields.get("partitions"), errors, queue)
    if errors:
        raise ValidationError(errors)
    return ttl, consume, partitions


def _partitions(value: Any, errors: v.Errors, queue: Queue) -> frozenset[int] | None:
    if not v.given(value) or value == []:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]  # one partition as a JSON number (SPEC §1: numbers or numeric strings)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        errors["partitions"] = "must be a list of partitions or a comma-separated string"
        return None
    found: set[int] = set()
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        before = len(errors)
        number = v.integer(item, "partitions", errors, 0, 1, queue.partitions)
        if len(errors) == before:
            found.add(number)
    if not found and "partitions" not in errors:
        return None
    return frozenset(found)


def expiry(now: float, ttl: int, cap: float | None) -> tuple[float, int]:
    """The ``exp`` of a new token (``ttl`` seconds from ``now``, unless the minting
    credential's own end, ``cap``, comes first) and its ``expires_in``, whole seconds
    (rounded down: the token never lives less than it says)."""
    expires = now + ttl
    if cap is not None:
        expires = min(expires, cap)
    return expires, max(0, math.floor(round(expires - now, 3)))
