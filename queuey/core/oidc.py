"""People (SPEC §8): JWTs of the OpenID Connect issuers of ``[[auth.issuers]]``.

Each issuer's keys (a JWK set) come from its ``jwks_url`` (fetched with httpx)
or its ``jwks_file``, and are cached per process. They are fetched at first
use and again when they are older than :data:`REFRESH_SECONDS`, or when a
token names a ``kid`` they lack — but never more than once in
:data:`REFETCH_SECONDS` per issuer, however many tokens ask (a failed fetch
counts too: an unreachable issuer is not hammered). Keys older than
``REFRESH_SECONDS`` that could not be fetched again are not trusted: only
keys seen published within the hour verify tokens.

A token is verified by PyJWT, with the algorithm its header names only if
the issuer's ``algorithms`` list it (never ``none`` or HMAC: the
configuration refuses them) and the key allows it (the JWK's own ``alg``,
``use`` and ``key_ops`` are honoured, its type and curve must fit). A token
without ``kid`` is tried against each of its issuer's keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec

from queuey.config import IssuerSettings
from queuey.core.auth import Person
from queuey.core.errors import InvalidToken

#: Keys are fetched again when older than this (SPEC §8: at least hourly).
REFRESH_SECONDS = 3600.0
#: At most one fetch per issuer in this long (SPEC §8: an unknown kid, once a minute).
REFETCH_SECONDS = 60.0
#: Leeway on exp and nbf, seconds (clocks of the issuer and of Queuey differ).
LEEWAY = 60
#: How long a JWKS fetch may take, and the largest JWK set read.
FETCH_TIMEOUT = 10.0
MAX_JWKS_BYTES = 1024 * 1024
#: The JWK key types and curves an asymmetric algorithm's family needs.
_FAMILIES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "ES256K": "secp256k1"}

_decode_json = msgspec.json.Decoder().decode


class KeysUnavailable(Exception):
    """An issuer's keys could not be fetched or read; ``str()`` says why."""


class IssuerKeys:
    """The cached JWK set of one issuer, fetched on the terms of the module's docstring."""

    def __init__(
        self,
        settings: IssuerSettings,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = REFRESH_SECONDS,
        refetch_seconds: float = REFETCH_SECONDS,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._refresh = refresh_seconds
        self._refetch = refetch_seconds
        self._keys: list[Mapping[str, Any]] = []
        self._fetched: float | None = None  # when the keys were last fetched
        self._attempted: float | None = None  # when a fetch was last tried
        self._failure: str | None = None  # why the last try failed
        #: Moves at every successful fetch: what was verified with older keys is checked again.
        self.generation = 0
        self._lock = asyncio.Lock()
        #: How many fetches were made (successful or not): the tests count them.
        self.fetches = 0

    async def candidates(self, kid: str | None) -> list[Mapping[str, Any]]:
        """The keys that may have signed a token naming ``kid`` (None: every key).

        Raises :class:`KeysUnavailable` when no key can be trusted and none could be fetched.
        """
        if self._stale():
            await self._fetch()
        if self._stale():
            raise KeysUnavailable(self._failure or "its keys could not be fetched")
        found = self._matching(kid)
        if kid is not None and not found:
            await self._fetch()  # a key published since: at most once a minute
            if self._stale():
                raise KeysUnavailable(self._failure or "its keys could not be fetched")
            found = self._matching(kid)
        return found

    def trusts(self, generation: int) -> bool:
        """Whether the keys of fetch ``generation`` are still trusted: none newer, none stale."""
        return generation == self.generation and not self._stale()

    def _stale(self) -> bool:
        return self._fetched is None or self._clock() - self._fetched >= self._refresh

    def _matching(self, kid: str | None) -> list[Mapping[str, Any]]:
        return [k for k in self._keys if kid is None or k.get("kid") == kid]

    async def _fetch(self) -> None:
        async with self._lock:  # one fetch at a time; those waiting see its outcome
            now = self._clock()
            if self._attempted is not None and now - self._attempted < self._refetch:
                return
            self._attempted = now
            self.fetches += 1
            try:
                document = await self._read()
                self._keys = _keys_of(document)
            except KeysUnavailable as exc:
                self._failure = str(exc)
                return
            self._fetched = now
            self._failure = None
            self.generation += 1

    async def _read(self) -> bytes:
        url, file = self.settings.jwks_url, self.settings.jwks_file
        if file is not None:
            try:
                return await asyncio.to_thread(Path(file).read_bytes)
            except OSError as exc:
                raise KeysUnavailable(f"cannot read {file}: {exc.strerror}") from None
        assert url is not None
        try:
            async with (
                httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise KeysUnavailable(f"{url} answered {response.status_code}")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise KeysUnavailable(f"{url} sent over {MAX_JWKS_BYTES} bytes")
                return body
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise KeysUnavailable(f"{url} could not be reached: {reason}") from None


def _keys_of(document: bytes) -> list[Mapping[str, Any]]:
    try:
        parsed = _decode_json(document)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise KeysUnavailable("its JWK set is not JSON") from None
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(keys, list):
        raise KeysUnavailable('its JWK set has no "keys" list')
    return [k for k in keys if isinstance(k, dict) and isinstance(k.get("kty"), str)]


def _usable(jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK | None:
    """The key of ``jwk`` for verifying with ``alg``, or None if the JWK does not allow it."""
    if jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if "alg" in jwk and jwk["alg"] != alg:
        return None
    if jwk.get("kty") != _FAMILIES.get(alg[:2]):
        return None  # an RSA key never verifies ES256, an oct key never anything
    if alg in _CURVES and jwk.get("crv") != _CURVES[alg]:
        return None  # a P-384 key never verifies ES256
    try:
        return jwt.PyJWK(dict(jwk), algorithm=alg)  # builds the key, checks an EC curve
    except jwt.PyJWTError:
        return None


class People:
    """Verifies people's JWTs against the configured issuers: the ``bid:`` principal."""

    def __init__(
        self,
        issuers: Iterable[IssuerSettings],
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float | None = None,
        refetch_seconds: float | None = None,
    ) -> None:
        # The module's constants are read here, not bound as defaults, so a test may shorten them.
        refresh = REFRESH_SECONDS if refresh_seconds is None else refresh_seconds
        refetch = REFETCH_SECONDS if refetch_seconds is None else refetch_seconds
        self.issuers = {i.issuer: IssuerKeys(i, clock, refresh, refetch) for i in issuers}

    async def person(self, token: str) -> Person:
        """The person ``token`` proves; :class:`InvalidToken` saying why it cannot be accepted."""
        person, _ = await self.verified(token)
        return person

    async def verified(self, token: str) -> tuple[Person, Callable[[], bool]]:
        """:meth:`person`, and a test that stays true while that answer still holds: until
        the token expires (with the leeway) or the issuer's keys are fetched again."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidToken("The bearer token is not a JWT.") from None
        iss = unverified.get("iss")
        keys = self.issuers.get(iss) if isinstance(iss, str) else None
        if keys is None:
            shown = repr(iss[:100]) if isinstance(iss, str) else "no issuer (iss)"
            raise InvalidToken(f"The token names {shown}, which is not an issuer trusted here.")
        settings = keys.settings
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in settings.algorithms:
            raise InvalidToken(
                f"The token's algorithm {str(alg)[:20]!r} is not accepted from {iss}"
                f" (accepted: {', '.join(settings.algorithms)})."
            )
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("The token's kid is not a string.")
        try:
            candidates = await keys.candidates(kid)
        except KeysUnavailable as exc:
            raise InvalidToken(f"The keys of issuer {iss} are unavailable: {exc}.") from None
        usable = [k for k in (_usable(jwk, alg) for jwk in candidates) if k is not None]
        if not usable:
            which = f"with kid {kid[:100]!r}" if kid is not None else "at all"
            raise InvalidToken(f"Issuer {iss} publishes no key {which} that verifies {alg}.")
        generation = keys.generation
        claims = self._verified(token, usable, alg, settings)
        person = Person(f"bid:{_email(claims)}", float(claims["exp"]))

        def holds() -> bool:
            return time.time() < person.expires + LEEWAY and keys.trusts(generation)

        return person, holds

    @staticmethod
    def _verified(
        token: str, keys: list[jwt.PyJWK], alg: str, settings: IssuerSettings
    ) -> dict[str, Any]:
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=list(settings.audience),
                    issuer=settings.issuer,
                    leeway=LEEWAY,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
                continue  # a token without kid: the next key may be the one
            except jwt.ExpiredSignatureError:
                raise InvalidToken("The token has expired.") from None
            except jwt.ImmatureSignatureError:
                raise InvalidToken("The token is not valid yet (nbf).") from None
            except jwt.InvalidAudienceError:
                raise InvalidToken(
                    f"The token's audience (aud) is not {' or '.join(settings.audience)}."
                ) from None
            except jwt.MissingRequiredClaimError as exc:
                raise InvalidToken(f"The token has no {exc.claim} claim.") from None
            except jwt.PyJWTError as exc:
                raise InvalidToken(f"The token is not valid: {exc}.") from None
            return claims
        raise InvalidToken("The token's signature is not valid.")


def _email(claims: Mapping[str, Any]) -> str:
    """The verified e-mail address, lower-cased (SPEC §8: email_verified true or "true")."""
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise InvalidToken("The token has no email claim.")
    verified = claims.get("email_verified")
    if verified is not True and verified != "true":
        raise InvalidToken("The token's email is not verified (email_verified).")
    local, at, domain = email.partition("@")
    if not at or not local or not domain or any(c.isspace() or c in "@,;" for c in local + domain):
        raise InvalidToken(f"The token's email {email[:100]!r} is not an e-mail address.")
    return email.lower()
