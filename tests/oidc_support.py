"""A test OpenID Connect issuer: real keys (cryptography), real JWTs (PyJWT), a real JWKS endpoint.

:class:`Issuer` makes RSA and EC key pairs, publishes the public halves as a
JWK set served over HTTP on 127.0.0.1 by a ``http.server`` thread (counting
the fetches), and signs ID tokens as a provider would.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from queuey.config import IssuerSettings

AUDIENCE = "queuey-test"
EMAIL = "Alice@Example.com"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Key:
    kid: str
    alg: str
    private: PrivateKey
    #: Extra JWK members (``use``, ``key_ops``...) or ``{"alg": None}`` to leave alg out.
    jwk_extra: dict[str, Any]

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            found = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            found = ECAlgorithm.to_jwk(public, as_dict=True)
        jwk: dict[str, Any] = {**found, "kid": self.kid, "alg": self.alg, "use": "sig"}
        for name, value in self.jwk_extra.items():
            if value is None:
                jwk.pop(name, None)
            else:
                jwk[name] = value
        return jwk


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


class Issuer:
    """An issuer at ``url`` whose JWK set (``jwks_url``) holds the keys ``published``."""

    def __init__(self, name: str | None = None) -> None:
        self.keys: dict[str, Key] = {}
        self.published: list[str] = []
        self.fetches = 0
        #: Answer the JWKS with this status instead (None: 200 and the keys).
        self.failing: int | None = None
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                if issuer.failing is not None:
                    self.send_error(issuer.failing)
                    return
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self.name = name or self.url
        self.jwks_url = f"{self.url}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add(
        self,
        kid: str,
        alg: str = "RS256",
        private: PrivateKey | None = None,
        publish: bool = True,
        jwk: dict[str, Any] | None = None,
    ) -> Key:
        """Make (or take) a key; ``jwk``: members to set in its JWK (None values: left out)."""
        if private is None:
            private = ec_key() if alg.startswith("ES") else rsa_key()
        key = Key(kid, alg, private, jwk or {})
        self.keys[kid] = key
        if publish:
            self.published.append(kid)
        return key

    def unpublish(self, kid: str) -> None:
        self.published.remove(kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.keys[kid].jwk() for kid in self.published]}

    def settings(self, **changes: Any) -> IssuerSettings:
        values: dict[str, Any] = {
            "issuer": self.name,
            "audience": (AUDIENCE,),
            "jwks_url": self.jwks_url,
            "algorithms": ("RS256", "ES256"),
        }
        values.update(changes)
        return IssuerSettings(**values)

    def token(
        self,
        kid: str,
        *,
        alg: str | None = None,
        header_kid: bool = True,
        omit: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """An ID token signed by key ``kid``: a verified ``EMAIL``, valid for ten minutes."""
        key = self.keys[kid]
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.name,
            "aud": AUDIENCE,
            "sub": "248289761001",
            "iat": now,
            "exp": now + 600,
            "email": EMAIL,
            "email_verified": True,
        }
        payload.update(claims)
        for name in omit:
            payload.pop(name, None)
        headers = {"kid": kid} if header_kid else {}
        return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers=headers)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def running_issuer(name: str | None = None) -> Iterator[Issuer]:
    """A fixture body: an issuer with an RSA key ``rsa1`` and an EC key ``ec1`` published."""
    issuer = Issuer(name)
    issuer.add("rsa1", "RS256")
    issuer.add("ec1", "ES256")
    try:
        yield issuer
    finally:
        issuer.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
