"""People (SPEC §8): JWTs of OpenID Connect issuers, verified against keys served over HTTP.

Real keys (RSA and EC, made by ``cryptography``), real JWTs (PyJWT), and a
JWK set served by a ``http.server`` thread on 127.0.0.1 (``tests/oidc_support.py``).
The API tests run on every backend; the key cache's timing rules are tested on
``core.oidc`` itself with a clock of the test's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from queuey.config import ConfigError, Settings, load
from queuey.core import oidc
from queuey.core.auth import Person
from queuey.core.bearer import BearerTokens
from queuey.core.errors import InvalidToken
from queuey.core.oidc import People
from queuey.core.tokens import ScopedTokens
from tests.api_support import error, ok, post
from tests.conftest import APP1, connect, free_port, make_queue
from tests.oidc_support import AUDIENCE, EMAIL, Issuer, bearer, ec_key, running_issuer
from tests.test_api_groups import act, create_group, url

DENIED = {"AccessDenied": "Access was denied to this resource."}
PERSON = "bid:alice@example.com"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    yield from running_issuer()


@pytest.fixture
async def people(settings: Settings, issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    """The app trusting ``issuer``, with a token secret."""
    trusting = settings.replace(issuers=(issuer.settings(),), token_secret=("s3cret",))
    async with connect(trusting) as client:
        yield client


def invalid(response: httpx.Response) -> str:
    """The message of a 401 ``InvalidToken``, after checking its shape and WWW-Authenticate."""
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    messages = error(response, 401)
    assert set(messages) == {"InvalidToken"}, messages
    return messages["InvalidToken"]


# -- what a person may do ------------------------------------------------------


@pytest.mark.parametrize("kid", ["rsa1", "ec1"])
async def test_a_listed_person_reads_deletes_and_consumes(
    people: httpx.AsyncClient, issuer: Issuer, kid: str
) -> None:
    """Listed as bid:Alice@EXAMPLE.com, the person with alice@example.com (any case) may read,
    delete and consume; never post, manage the queue or list the application's queues."""
    queue = await make_queue(people, principles="app:app1,bid:Alice@EXAMPLE.com", partitions=2)
    first = await post(people, queue, "one", x_partition="1")
    second = await post(people, queue, "two", x_partition="2")
    me = bearer(issuer.token(kid, email="ALICE@example.COM"))

    found = ok(await people.get(f"/v1/app1/{queue}", params={"partitions": "1,2"}, headers=me))
    assert [m["body"] for m in found["messages"]] == ["one", "two"]
    by_id = ok(await people.get(f"/v1/app1/{queue}/2:{second['key']}", headers=me))
    assert [m["body"] for m in by_id["messages"]] == ["two"]
    # access_token= on GET (EventSource cannot set headers), HEAD too.
    token = me["Authorization"].removeprefix("Bearer ")
    found = ok(await people.get(f"/v1/app1/{queue}", params={"access_token": token}))
    assert [m["body"] for m in found["messages"]] == ["one"]
    head = await people.head(f"/v1/app1/{queue}", params={"access_token": token})
    assert head.status_code == 200

    await create_group(people, queue)
    claimed = ok(await act(people, queue, "claim", headers=me))["messages"]
    assert sorted(m["body"] for m in claimed) == ["one", "two"]
    acked = ok(await act(people, queue, "ack", headers=me, receipts=[claimed[0]["receipt"]]))
    assert acked["acknowledged"] == [claimed[0]["receipt"]]
    ok(await people.get(url(queue), headers=me))  # the group's state
    # Managing groups is the owner's.
    assert error(await people.put(url(queue, "h"), json={}, headers=me), 403) == DENIED

    for method, path in [
        ("POST", f"/v1/app1/{queue}"),
        ("PUT", f"/v1/app1/{queue}"),
        ("DELETE", f"/v1/app1/{queue}"),
        ("PUT", f"/v1/app1/{queue}/{first['key']}"),
        ("GET", "/v1/app1"),
        ("POST", "/v1/app1"),
    ]:
        response = await people.request(method, path, content=b"x", headers=me)
        assert error(response, 403) == DENIED, (method, path)

    ok(await people.delete(f"/v1/app1/{queue}/{first['key']}", headers=me))
    # access_token= does not count on DELETE: no credentials, so no right.
    response = await people.delete(
        f"/v1/app1/{queue}/2:{second['key']}", params={"access_token": token}
    )
    assert error(response, 403) == DENIED
    remaining = ok(await people.get(f"/v1/app1/{queue}", params={"partitions": "1,2"}, headers=me))
    assert [m["body"] for m in remaining["messages"]] == ["two"]


async def test_a_person_not_listed_is_denied(people: httpx.AsyncClient, issuer: Issuer) -> None:
    me = bearer(issuer.token("rsa1"))
    plain = await make_queue(people)  # no principles: the owner only
    other = await make_queue(people, principles="bid:bob@example.com,app:app1")
    public = await make_queue(people, type="public")
    for queue in (plain, other):
        assert error(await people.get(f"/v1/app1/{queue}", headers=me), 403) == DENIED
    ok(await people.get(f"/v1/app1/{public}", headers=me))
    response = await people.delete(f"/v1/app1/{public}/{(await post(people, public))['key']}",
                                   headers=me)  # fmt: skip
    assert error(response, 403) == DENIED


async def test_rights_are_the_union_of_every_credential(
    people: httpx.AsyncClient, issuer: Issuer
) -> None:
    """A person and an application together hold what each holds (SPEC §8)."""
    queue = await make_queue(people, principles=PERSON)  # the owner is not listed
    both = {"Authorization": f"Bearer {issuer.token('rsa1')}; Application key1"}
    ok(await people.post(f"/v1/app1/{queue}", content=b"posted", headers=both), 201)  # owner
    found = ok(await people.get(f"/v1/app1/{queue}", headers=both))["messages"]  # person
    assert [m["body"] for m in found] == ["posted"]
    assert error(await people.get(f"/v1/app1/{queue}", headers=APP1), 403) == DENIED
    # One invalid credential among valid ones: 401, whatever the others hold.
    spoiled = {"Authorization": f"Bearer {issuer.token('rsa1', aud='other')}; Application key1"}
    invalid(await people.get(f"/v1/app1/{queue}", headers=spoiled))
    # An unknown application key is reported as such before any token.
    wrong = {"Authorization": f"Bearer {issuer.token('rsa1')}; Application nope"}
    assert set(error(await people.get(f"/v1/app1/{queue}", headers=wrong), 401)) == {
        "InvalidApplicationKey"
    }


# -- 401 -----------------------------------------------------------------------


def hmac_token(issuer: Issuer) -> str:
    """A token naming the issuer but signed with HMAC over its public key (alg confusion)."""
    pem = (
        issuer.keys["rsa1"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = {"iss": issuer.name, "aud": AUDIENCE, "exp": int(time.time()) + 600,
              "email": EMAIL, "email_verified": True}  # fmt: skip
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}
    # PyJWT refuses to sign with a public key as an HMAC secret: the attack, by hand.
    signing = ".".join(
        jwt.utils.base64url_encode(json.dumps(part).encode()).decode() for part in (header, claims)
    )
    mac = hmac.new(pem, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{jwt.utils.base64url_encode(mac).decode()}"


def none_token(issuer: Issuer) -> str:
    claims = {"iss": issuer.name, "aud": AUDIENCE, "exp": int(time.time()) + 600,
              "email": EMAIL, "email_verified": True}  # fmt: skip
    return jwt.encode(claims, "", algorithm="none")


def forged(issuer: Issuer) -> str:
    """Signed by a key of the right type and kid that the issuer never published."""
    impostor = Issuer(issuer.name)
    try:
        impostor.add("rsa1", "RS256")
        return impostor.token("rsa1")
    finally:
        impostor.stop()


def tampered(issuer: Issuer) -> str:
    header, payload, signature = issuer.token("ec1").split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["email"] = "mallory@example.com"
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{payload}.{signature}"


def _unknown_kid(issuer: Issuer) -> str:
    issuer.add("hidden", "RS256", publish=False)
    return issuer.token("hidden")


UNACCEPTABLE: list[tuple[str, Any, str]] = [
    ("expired", lambda i: i.token("rsa1", exp=int(time.time()) - 120), "expired"),
    ("no exp", lambda i: i.token("rsa1", omit=("exp",)), "exp"),
    ("nbf ahead", lambda i: i.token("ec1", nbf=int(time.time()) + 120), "nbf"),
    ("other audience", lambda i: i.token("rsa1", aud="someone-else"), "audience"),
    ("no audience", lambda i: i.token("rsa1", omit=("aud",)), "aud"),
    ("unknown issuer", lambda i: i.token("rsa1", iss="https://elsewhere.example"), "not an issuer"),
    ("no issuer", lambda i: i.token("rsa1", omit=("iss",)), "no issuer"),
    ("no email", lambda i: i.token("rsa1", omit=("email",)), "email"),
    ("unverified", lambda i: i.token("rsa1", email_verified=False), "not verified"),
    ("verified missing", lambda i: i.token("rsa1", omit=("email_verified",)), "not verified"),
    ("verified 'false'", lambda i: i.token("rsa1", email_verified="false"), "not verified"),
    ("verified 1", lambda i: i.token("rsa1", email_verified=1), "not verified"),
    ("not an address", lambda i: i.token("rsa1", email="alice"), "not an e-mail"),
    ("forged", forged, "signature"),
    ("tampered", tampered, "signature"),
    ("HMAC", hmac_token, "signature"),
    ("none", none_token, "algorithm"),
    ("RS512 not accepted", lambda i: i.token("rsa1", alg="RS512"), "algorithm"),
    ("unknown kid", _unknown_kid, "kid 'hidden'"),
    ("not a JWT", lambda i: "abc.def", "not a JWT"),
    ("garbage", lambda i: "Zm9v", "not a JWT"),
]


@pytest.mark.parametrize(
    ("make", "says"), [(m, s) for _, m, s in UNACCEPTABLE], ids=[n for n, _, _ in UNACCEPTABLE]
)
async def test_unacceptable_tokens_are_401(
    settings: Settings, issuer: Issuer, make: Any, says: str
) -> None:
    """Each is 401 InvalidToken with WWW-Authenticate, as a header and as access_token=, on every
    /v1 resource, and before an unknown application or queue (SPEC §2's order)."""
    # The secret of scoped tokens differs from anything the issuer could know.
    trusting = settings.replace(issuers=(issuer.settings(),), token_secret=("s3cret",))
    async with connect(trusting) as client:
        queue = await make_queue(client, principles=PERSON)
        token = make(issuer)
        message = invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(token)))
        assert says in message
        invalid(await client.get(f"/v1/app1/{queue}", params={"access_token": token}))
        invalid(await client.post(f"/v1/app1/{queue}", content=b"x", headers=bearer(token)))
        invalid(await client.get("/v1/nobody/q", headers=bearer(token)))
        invalid(await client.delete("/v1/app1/nosuchqueue", headers=bearer(token)))
        head = await client.head(f"/v1/app1/{queue}", headers=bearer(token))
        assert head.status_code == 401
        assert head.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_exp_and_nbf_have_60_seconds_of_leeway(
    people: httpx.AsyncClient, issuer: Issuer
) -> None:
    queue = await make_queue(people, principles=PERSON)
    now = int(time.time())
    for token in (
        issuer.token("rsa1", exp=now - 30),
        issuer.token("ec1", nbf=now + 30),
        issuer.token("rsa1", email_verified="true"),
        issuer.token("rsa1", aud=["another", AUDIENCE]),
    ):
        ok(await people.get(f"/v1/app1/{queue}", headers=bearer(token)))


async def test_an_empty_bearer_and_no_issuer_are_401(settings: Settings, issuer: Issuer) -> None:
    async with connect(settings.replace(token_secret=())) as client:  # no issuer, no secret
        queue = await make_queue(client)
        for header in ("Bearer", "Bearer ", "bearer  "):
            invalid(await client.get(f"/v1/app1/{queue}", headers={"Authorization": header}))
        message = invalid(
            await client.get(f"/v1/app1/{queue}", headers=bearer(issuer.token("rsa1")))
        )
        assert "No OpenID Connect issuer" in message


# -- keys: kid, rotation, refetch limits, unreachable issuers --------------------


async def test_a_token_without_kid_is_tried_against_each_key(
    people: httpx.AsyncClient, issuer: Issuer
) -> None:
    queue = await make_queue(people, principles=PERSON)
    issuer.add("rsa2", "RS256")
    for kid in ("rsa1", "rsa2", "ec1"):
        token = issuer.token(kid, header_kid=False)
        ok(await people.get(f"/v1/app1/{queue}", headers=bearer(token)))
    invalid(await people.get(f"/v1/app1/{queue}", headers=bearer(forged(issuer))))


async def test_the_jwks_own_alg_use_and_curve_are_honoured(
    settings: Settings, issuer: Issuer
) -> None:
    """A key published for RS256 never verifies PS256; an encryption key never verifies;
    a P-384 key never verifies ES256, whatever the token says."""
    issuer.add("enc", "RS256", jwk={"use": "enc"})
    issuer.add("ops", "RS256", jwk={"key_ops": ["encrypt"]})
    issuer.add("p384", "ES384", private=ec_key(ec.SECP384R1()), jwk={"alg": None})
    issuer.add("noalg", "RS256", jwk={"alg": None})
    trusting = settings.replace(issuers=(issuer.settings(algorithms=("RS256", "PS256", "ES256")),))
    async with connect(trusting) as client:
        queue = await make_queue(client, principles=PERSON)
        for token in (
            issuer.token("rsa1", alg="PS256"),  # the JWK says RS256
            issuer.token("enc"),
            issuer.token("ops"),
        ):
            assert "no key" in invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(token)))
        # A P-384 key without alg, a token claiming ES256: the curve does not fit.
        header = {"alg": "ES256", "kid": "p384"}
        claims = jwt.decode(issuer.token("rsa1"), options={"verify_signature": False})
        p384 = ".".join(
            jwt.utils.base64url_encode(part).decode()
            for part in (json.dumps(header).encode(), json.dumps(claims).encode(), b"sig" * 20)
        )
        assert "no key" in invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(p384)))
        # Without its own alg, a key verifies any algorithm configured that fits its type.
        for alg in ("RS256", "PS256"):
            ok(
                await client.get(
                    f"/v1/app1/{queue}", headers=bearer(issuer.token("noalg", alg=alg))
                )
            )


async def test_an_unknown_kid_fetches_the_keys_at_most_once_a_minute(
    people: httpx.AsyncClient, issuer: Issuer
) -> None:
    queue = await make_queue(people, principles=PERSON)
    ok(await people.get(f"/v1/app1/{queue}", headers=bearer(issuer.token("rsa1"))))
    assert issuer.fetches == 1
    issuer.add("rsa2", "RS256")  # published after the first fetch
    fresh = issuer.token("rsa2")
    answers = await asyncio.gather(
        *(people.get(f"/v1/app1/{queue}", headers=bearer(fresh)) for _ in range(20))
    )
    # The first fetch was under a minute ago: no fetch, so the new key is not known yet.
    assert {a.status_code for a in answers} == {401}
    assert "kid 'rsa2'" in invalid(answers[0])
    assert issuer.fetches == 1
    ok(await people.get(f"/v1/app1/{queue}", headers=bearer(issuer.token("ec1"))))
    assert issuer.fetches == 1


async def test_rotation_new_keys_are_fetched_and_old_ones_stop_being_trusted(
    settings: Settings, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the minute and the hour shortened (the rules are what is tested, on real time)."""
    monkeypatch.setattr(oidc, "REFETCH_SECONDS", 0.3)
    monkeypatch.setattr(oidc, "REFRESH_SECONDS", 1.5)
    trusting = settings.replace(issuers=(issuer.settings(),))
    async with connect(trusting) as client:
        queue = await make_queue(client, principles=PERSON)
        old = issuer.token("rsa1")
        ok(await client.get(f"/v1/app1/{queue}", headers=bearer(old)))
        issuer.add("rsa2", "RS256")
        await asyncio.sleep(0.4)
        new = issuer.token("rsa2")
        ok(await client.get(f"/v1/app1/{queue}", headers=bearer(new)))  # an unknown kid: fetched
        assert issuer.fetches == 2
        issuer.unpublish("rsa1")
        ok(await client.get(f"/v1/app1/{queue}", headers=bearer(old)))  # known, until the refresh
        await asyncio.sleep(1.6)
        assert "kid 'rsa1'" in invalid(await client.get(f"/v1/app1/{queue}", headers=bearer(old)))
        ok(await client.get(f"/v1/app1/{queue}", headers=bearer(new)))


async def test_an_unreachable_issuer_makes_its_tokens_401_saying_why(
    settings: Settings, issuer: Issuer
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    cases = [(issuer.settings(jwks_url=closed), "could not be reached")]
    failing = Issuer("https://failing.example")
    failing.add("rsa1", "RS256")
    failing.failing = 503
    cases.append((failing.settings(), "answered 503"))
    try:
        for config, says in cases:
            async with connect(settings.replace(issuers=(config,))) as client:
                queue = await make_queue(client, principles=PERSON)
                source = failing if config.issuer == failing.name else issuer
                answer = await client.get(f"/v1/app1/{queue}", headers=bearer(source.token("rsa1")))
                message = invalid(answer)
                assert "unavailable" in message and says in message, message
    finally:
        failing.stop()


async def test_keys_from_a_jwks_file(settings: Settings, issuer: Issuer, tmp_path: Path) -> None:
    config = tmp_path / "conf" / "queuey.toml"
    config.parent.mkdir()
    (config.parent / "keys.json").write_text(json.dumps(issuer.jwks()))
    config.write_text(
        '[application_keys]\napp1 = ["key1"]\n\n[[auth.issuers]]\n'
        f'issuer = "{issuer.name}"\naudience = ["{AUDIENCE}"]\njwks_file = "keys.json"\n'
    )
    loaded = load(str(config), environ={})
    (found,) = loaded.issuers
    assert found.jwks_file == str(config.parent / "keys.json")
    async with connect(settings.replace(issuers=loaded.issuers)) as client:
        queue = await make_queue(client, principles=PERSON)
        ok(await client.get(f"/v1/app1/{queue}", headers=bearer(issuer.token("ec1"))))
    assert issuer.fetches == 0
    (config.parent / "keys.json").unlink()
    async with connect(settings.replace(issuers=loaded.issuers)) as client:
        queue = await make_queue(client, principles=PERSON)
        message = invalid(
            await client.get(f"/v1/app1/{queue}", headers=bearer(issuer.token("ec1")))
        )
        assert "cannot read" in message and "keys.json" in message


# -- the key cache's timing, on its own clock ---------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def person(people: People, token: str) -> str:
    return (await people.person(token)).name


async def test_the_cache_refreshes_hourly_refetches_once_a_minute(issuer: Issuer) -> None:
    clock = Clock()
    people = People([issuer.settings()], clock=clock)
    assert await person(people, issuer.token("rsa1")) == "bid:alice@example.com"
    assert issuer.fetches == 1
    issuer.add("rsa2")
    with pytest.raises(InvalidToken, match="kid 'rsa2'"):
        await people.person(issuer.token("rsa2"))
    assert issuer.fetches == 1  # under a minute since the first fetch
    clock.now += 59
    with pytest.raises(InvalidToken, match="kid 'rsa2'"):
        await people.person(issuer.token("rsa2"))
    assert issuer.fetches == 1
    clock.now += 1
    await person(people, issuer.token("rsa2"))
    assert issuer.fetches == 2
    for _ in range(5):  # an unknown kid, again and again: one fetch a minute
        with pytest.raises(InvalidToken):
            await people.person(forged_kid(issuer))
        clock.now += 20
    assert issuer.fetches == 3
    # Known kids cost nothing until the hour is up; then one fetch.
    issuer.unpublish("rsa1")
    clock.now += 3600 - 100 + 5
    await person(people, issuer.token("rsa1"))
    fetched = issuer.fetches
    clock.now += 100
    with pytest.raises(InvalidToken, match="kid 'rsa1'"):
        await people.person(issuer.token("rsa1"))  # no longer published: no longer trusted
    assert issuer.fetches == fetched + 1


def forged_kid(issuer: Issuer) -> str:
    issuer.add(f"k{len(issuer.keys)}", publish=False)
    return issuer.token(f"k{len(issuer.keys) - 1}")


async def test_an_issuer_that_fails_is_asked_again_after_a_minute(issuer: Issuer) -> None:
    clock = Clock()
    people = People([issuer.settings()], clock=clock)
    issuer.failing = 500
    for _ in range(3):
        with pytest.raises(InvalidToken, match="answered 500"):
            await people.person(issuer.token("rsa1"))
    assert issuer.fetches == 1
    issuer.failing = None
    clock.now += 30
    with pytest.raises(InvalidToken, match="answered 500"):
        await people.person(issuer.token("rsa1"))
    clock.now += 30
    assert await person(people, issuer.token("ec1")) == "bid:alice@example.com"
    assert issuer.fetches == 2
    # After the hour, an issuer that cannot be reached: its keys are no longer trusted.
    issuer.failing = 502
    clock.now += 3600
    with pytest.raises(InvalidToken, match="answered 502"):
        await people.person(issuer.token("ec1"))


async def test_a_remembered_person_is_checked_again_when_the_keys_change(issuer: Issuer) -> None:
    """Verified tokens are remembered (bearer.py), but never beyond the keys they were
    verified with: a key no longer published at the next fetch is not trusted from memory."""
    clock = Clock()
    bearer_tokens = BearerTokens(ScopedTokens(()), People([issuer.settings()], clock=clock))
    token = issuer.token("rsa1")
    first = await bearer_tokens.principal(token)
    again = await bearer_tokens.principal(token)
    assert first == again == Person("bid:alice@example.com", first.expires)
    assert issuer.fetches == 1
    issuer.unpublish("rsa1")
    clock.now += 3600  # the hourly fetch
    with pytest.raises(InvalidToken, match="kid 'rsa1'"):
        await bearer_tokens.principal(token)
    assert issuer.fetches == 2
    # And an unknown kid's fetch, once a minute, also makes remembered tokens checked again.
    other = issuer.token("ec1")
    await bearer_tokens.principal(other)
    issuer.unpublish("ec1")
    issuer.add("rsa2")
    clock.now += 60
    await bearer_tokens.principal(issuer.token("rsa2"))
    assert issuer.fetches == 3
    with pytest.raises(InvalidToken, match="kid 'ec1'"):
        await bearer_tokens.principal(other)


async def test_concurrent_tokens_share_one_fetch(issuer: Issuer) -> None:
    people = People([issuer.settings()])
    names = await asyncio.gather(*(person(people, issuer.token("ec1")) for _ in range(30)))
    assert set(names) == {"bid:alice@example.com"}
    assert issuer.fetches == 1


# -- configuration -----------------------------------------------------------------


ISSUER = '[[auth.issuers]]\nissuer = "https://id.example"\n'
#: An issuer's other required keys.
REST = 'audience = "q"\njwks_file = "k"\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (ISSUER + 'audience = "q"\njwks_url = "https://id.example/k"\njwks_file = "k.json"\n',
         "auth.issuers[0]: both jwks_url and jwks_file"),
        (ISSUER + 'audience = "q"\n', "auth.issuers[0]: neither jwks_url nor jwks_file"),
        (ISSUER + 'audience = ""\njwks_file = "k"\n', "issuers[0].audience: must not be empty"),
        (ISSUER + 'audience = []\njwks_file = "k"\n', "issuers[0].audience: must not be empty"),
        (ISSUER + 'jwks_file = "k"\n', "auth.issuers[0].audience: Required"),
        (ISSUER + 'audience = "q"\njwks_file = "k"\nalgorithms = ["RS256", "HS256"]\n',
         'auth.issuers[0].algorithms: "HS256" is never accepted'),
        (ISSUER + 'audience = "q"\njwks_file = "k"\nalgorithms = ["none"]\n',
         'auth.issuers[0].algorithms: "none" is never accepted'),
        (ISSUER + 'audience = "q"\njwks_file = "k"\nalgorithms = ["XS1"]\n',
         'auth.issuers[0].algorithms: "XS1" is not one of'),
        (ISSUER + 'audience = "q"\njwks_url = "http://id.example/k"\n',
         "auth.issuers[0].jwks_url: must be https (http only to a loopback host"),
        (ISSUER + 'audience = "q"\njwks_url = "ftp://id.example/k"\n',
         "auth.issuers[0].jwks_url: must be https, not ftp"),
        (ISSUER + REST + ISSUER + REST,
         "auth.issuers[1].issuer: 'https://id.example' is configured twice"),
        ("[[auth.issuers]]\n" + REST, "auth.issuers[0].issuer: Required"),
        (ISSUER + 'audience = "q"\njwks_file = "k"\nscope = "x"\n',
         "auth.issuers[0].scope: unknown setting"),
        ('[auth]\ntoken_secret = ""\n', "auth.token_secret: must not be empty"),
        ("[auth]\ntoken_secret = []\n", "auth.token_secret: must not be empty"),
        ("[auth]\ntoken_secret = 3\n", "auth.token_secret: must be a string or a list"),
        ('[auth]\nsecret = "x"\n', "auth.secret: unknown setting"),
    ],
)  # fmt: skip
def test_configuration_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "queuey.toml"
    path.write_text('[application_keys]\napp1 = ["key1"]\n\n' + text)
    with pytest.raises(ConfigError) as caught:
        load(str(path), environ={})
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"{path}: ")
    assert problem in line, line


def test_good_configurations(tmp_path: Path) -> None:
    path = tmp_path / "queuey.toml"
    path.write_text(
        '[application_keys]\napp1 = ["key1"]\n\n[auth]\ntoken_secret = ["new", "old"]\n\n'
        + ISSUER
        + 'audience = ["a", "b"]\njwks_url = "http://localhost:8080/k"\n'
        '[[auth.issuers]]\nissuer = "https://other.example"\naudience = "q"\n'
        'jwks_url = "http://[::1]:9/k"\nalgorithms = ["ES384"]\n'
    )
    settings = load(str(path), environ={})
    assert settings.token_secret == ("new", "old")
    first, second = settings.issuers
    assert (first.audience, first.algorithms) == (("a", "b"), ("RS256", "ES256"))
    assert first.jwks_file is None
    assert (second.audience, second.algorithms) == (("q",), ("ES384",))
    assert load(str(path), environ={"QUEUEY_TOKEN_SECRET": "env"}).token_secret == ("env",)


def test_auth_settings_are_documented() -> None:
    from queuey.settings import ISSUER_SETTINGS
    from tests.test_limits import documented_rows

    rows = set(documented_rows())
    for setting in ISSUER_SETTINGS:
        assert f"{setting.section}.{setting.key}" in rows, setting
    assert {"auth.token_secret", "auth.issuers"} <= rows


def test_a_configuration_error_stops_serve_with_status_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "queuey.toml"
    path.write_text('[application_keys]\napp1 = ["key1"]\n\n' + ISSUER + 'audience = "q"\n')
    result = subprocess.run(
        [sys.executable, "-m", "queuey.cli", "serve", "--config", str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"{path}: auth.issuers[0]: neither jwks_url nor jwks_file; give one\n"
