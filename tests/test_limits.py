"""Rate limits and quotas (SPEC §9) through HTTP, and the token buckets under a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from queuey.api.app import QueueyApp, create_app
from queuey.config import APPLICATION_SETTINGS, ApplicationLimits, ConfigError, Settings, load
from queuey.core.errors import TooManyRequests
from queuey.core.limits import Rate, RateLimiter, retry_after
from tests.api_support import error, ok
from tests.conftest import ALLOWED_ORIGIN, APP1, APP2, KEYS, ROOT, auth, make_queue

BIG = b"x" * 70_000  # over max_request_bytes (64 KiB in the test settings)
#: A rate slow enough that no token comes back during a test: only the burst passes.
SLOW = 0.01


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    """The test settings on a SQLite file, for what does not depend on the store (quotas do)."""
    return Settings(
        storage_url=f"sqlite:///{tmp_path / 'queuey.db'}",
        application_keys=KEYS,
        cors_origins=(ALLOWED_ORIGIN,),
        max_message_bytes=1024,
        max_request_bytes=64 * 1024,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[QueueyApp]:
    app = create_app(settings)
    async with app.lifespan():
        yield app


@contextlib.asynccontextmanager
async def connect(app: QueueyApp, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client whose socket peer is ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as client:
        yield client


def limited(settings: Settings, **apps: ApplicationLimits) -> Settings:
    return settings.replace(applications=MappingProxyType(apps))


def too_many(response: httpx.Response) -> int:
    """The Retry-After of a 429, after checking the answer's shape."""
    assert set(error(response, 429)) == {"TooManyRequests"}
    return int(response.headers["retry-after"])


# -- per application ---------------------------------------------------------------


async def test_over_the_burst_is_429_with_retry_after(local: Settings) -> None:
    app_settings = limited(local, app1=ApplicationLimits(requests_per_second=0.5, burst=3))
    async with running(app_settings) as app, connect(app) as client:
        for _ in range(3):
            ok(await client.get("/v1/app1", headers=APP1))
        response = await client.get("/v1/app1", headers=APP1)
        assert too_many(response) == 2  # one token in 2 s at 0.5/s, rounded up
        assert "app1" in response.json()["error_msg"]["TooManyRequests"]
        head = await client.head("/v1/app1", headers=APP1)
        assert (head.status_code, head.content, head.headers["retry-after"]) == (429, b"", "2")


async def test_burst_defaults_to_the_rate(local: Settings) -> None:
    async with (
        running(limited(local, app1=ApplicationLimits(requests_per_second=4))) as app,
        connect(app) as client,
    ):
        statuses = [(await client.get("/v1/app1", headers=APP1)).status_code for _ in range(6)]
        assert statuses[:4] == [200] * 4
        assert statuses[-1] == 429


async def test_refused_requests_do_not_count(local: Settings) -> None:
    async with (
        running(limited(local, app1=ApplicationLimits(requests_per_second=5, burst=2))) as app,
        connect(app) as client,
    ):
        for _ in range(2):
            ok(await client.get("/v1/app1", headers=APP1))
        for _ in range(20):  # each refused: none may take a token it does not have
            assert (await client.get("/v1/app1", headers=APP1)).status_code == 429
        await asyncio.sleep(0.3)  # 1.5 tokens at 5/s
        ok(await client.get("/v1/app1", headers=APP1))
        assert (await client.get("/v1/app1", headers=APP1)).status_code == 429


async def test_applications_have_their_own_buckets(local: Settings) -> None:
    limits = {
        "app1": ApplicationLimits(requests_per_second=SLOW, burst=2),
        "app2": ApplicationLimits(requests_per_second=SLOW, burst=2),
    }
    async with running(limited(local, **limits)) as app, connect(app) as client:
        for _ in range(2):
            ok(await client.get("/v1/app1", headers=APP1))
        too_many(await client.get("/v1/app1", headers=APP1))
        ok(await client.get("/v1/app2", headers=APP2))  # app2's bucket is untouched
        for _ in range(20):  # app3 has no limit
            ok(await client.get("/v1/app3", headers=auth("key3a")))


async def test_a_request_as_several_applications_counts_against_the_first(
    local: Settings,
) -> None:
    limits = {
        "app1": ApplicationLimits(requests_per_second=SLOW, burst=1),
        "app2": ApplicationLimits(requests_per_second=SLOW, burst=5),
    }
    async with running(limited(local, **limits)) as app, connect(app) as client:
        ok(await client.get("/v1/app1", headers=APP1))
        too_many(await client.get("/v1/app1", headers=APP1))
        # app2 first: counted against app2, which has tokens left.
        ok(await client.get("/v1/app1", headers=auth("key2", "key1")))
        headers = [("Authorization", "Basic eDp5"), ("Authorization", "Application key2")]
        ok(await client.get("/v1/app2", headers=[*headers, ("Authorization", "Application key1")]))
        too_many(await client.get("/v1/app2", headers=auth("key1", "key2")))


async def test_every_v1_endpoint_is_limited_and_operations_are_not(local: Settings) -> None:
    async with running(local) as unlimited, connect(unlimited) as setup:
        queue = await make_queue(setup, queue_name="q")
        posted = await setup.post(f"/v1/app1/{queue}", content=b"m", headers=APP1)
        key = posted.json()["messages"][0]["key"]
        ok(await setup.put(f"/v1/app1/{queue}/groups/g", headers=APP1), 201)
    calls = [
        ("GET", "/v1/app1"),
        ("POST", "/v1/app1"),
        ("GET", "/v1/app1/q"),
        ("POST", "/v1/app1/q"),
        ("PUT", "/v1/app1/q"),
        ("GET", f"/v1/app1/q/{key}"),
        ("PUT", f"/v1/app1/q/{key}"),
        ("DELETE", f"/v1/app1/q/{key}"),
        ("GET", "/v1/app1/q/groups"),
        ("GET", "/v1/app1/q/groups/g"),
        ("PUT", "/v1/app1/q/groups/g"),
        ("POST", "/v1/app1/q/groups/g/claim"),
        ("POST", "/v1/app1/q/groups/g/ack"),
        ("POST", "/v1/app1/q/groups/g/release"),
        ("POST", "/v1/app1/q/groups/g/extend"),
        ("POST", "/v1/app1/q/groups/g/seek"),
        ("DELETE", "/v1/app1/q/groups/g"),
        ("DELETE", "/v1/app1/q"),
    ]
    app_settings = limited(local, app1=ApplicationLimits(requests_per_second=SLOW, burst=1))
    for method, path in calls:
        async with running(app_settings) as app, connect(app) as client:
            assert (await client.get("/v1/app1", headers=APP1)).status_code == 200
            response = await client.request(method, path, headers=APP1)
            assert too_many(response) >= 1, (method, path)
            for operation in ("/__heartbeat__", "/__lbheartbeat__", "/__version__"):
                ok(await client.get(operation, headers=APP1))


# -- order of checks ----------------------------------------------------------------


async def test_rights_come_before_the_rate_limit_and_the_limit_before_size(
    local: Settings,
) -> None:
    limits = {"app1": ApplicationLimits(requests_per_second=SLOW, burst=1)}
    async with running(limited(local, **limits)) as app, connect(app) as client:
        await make_queue(client, queue_name="q")  # the one token
        # 401, 404 and 403 before 429: the exhausted bucket is not even looked at.
        bad = {"Authorization": "Application nope"}
        assert set(error(await client.get("/v1/app1", headers=bad), 401)) == {
            "InvalidApplicationKey"
        }
        assert set(error(await client.get("/v1/app1/nope", headers=APP1), 404)) == {
            "InvalidQueueName"
        }
        assert set(error(await client.get("/v1/app1/q", headers=APP2), 403)) == {"AccessDenied"}
        # 429 before 413 and 400.
        too_many(await client.post("/v1/app1/q", content=BIG, headers=APP1))
        too_many(await client.post("/v1/app1/q", content=b"m", headers={**APP1, "X-TTL": "0"}))
        too_many(await client.post("/v1/app1", content=BIG, headers=APP1))
        # app2 has no limit: its 413 comes as always.
        ok(await client.post("/v1/app2", data={"queue_name": "q"}, headers=APP2), 201)
        assert set(error(await client.post("/v1/app2/q", content=BIG, headers=APP2), 413)) == {
            "PayloadTooLarge"
        }


# -- anonymous requests -------------------------------------------------------------


@pytest.fixture
def anonymous_settings(local: Settings) -> Settings:
    return local.replace(
        anonymous_requests_per_second=SLOW,
        anonymous_burst=2,
        trusted_proxies=("10.0.0.1", "fd00::/8"),
    )


async def public_queue(app: QueueyApp) -> str:
    async with connect(app) as client:
        return await make_queue(client, queue_name="pub", type="public")


async def test_anonymous_requests_share_one_bucket_per_address(
    anonymous_settings: Settings,
) -> None:
    async with running(anonymous_settings) as app:
        queue = await public_queue(app)
        path = f"/v1/app1/{queue}"
        async with connect(app, "192.0.2.1") as first, connect(app, "192.0.2.2") as second:
            for _ in range(2):
                ok(await first.get(path))
            retry = too_many(await first.get(path))
            assert retry == 100  # one token at 0.01/s
            assert "address" in (await first.get(path)).json()["error_msg"]["TooManyRequests"]
            ok(await second.get(path))  # another address, another bucket
            # The application's own requests from that address are not anonymous.
            for _ in range(5):
                ok(await first.get(path, headers=APP1))
            # Refused (403) anonymous requests never reach the limit.
            assert (await second.get("/v1/app1")).status_code == 403


async def test_x_forwarded_for_counts_only_from_trusted_proxies(
    anonymous_settings: Settings,
) -> None:
    async with running(anonymous_settings) as app:
        path = f"/v1/app1/{await public_queue(app)}"
        async with connect(app, "10.0.0.1") as proxy:
            for client in ("203.0.113.7", "203.0.113.8"):
                forwarded = {"X-Forwarded-For": f"{client}, 10.9.9.9"}
                for _ in range(2):
                    ok(await proxy.get(path, headers=forwarded))
                too_many(await proxy.get(path, headers=forwarded))
            # The same client behind another port, as some proxies write it.
            too_many(await proxy.get(path, headers={"X-Forwarded-For": "203.0.113.7:5555"}))
            # Without the header (or with garbage), the proxy itself is the client.
            ok(await proxy.get(path))
            ok(await proxy.get(path, headers={"X-Forwarded-For": "unknown"}))
            too_many(await proxy.get(path))
        async with connect(app, "fd00::5") as proxy6:
            ok(await proxy6.get(path, headers={"X-Forwarded-For": "[2001:db8::1]:443"}))
        async with connect(app, "192.0.2.9") as untrusted:
            # Not a trusted proxy: its X-Forwarded-For is ignored, whatever it says.
            for i in range(2):
                ok(await untrusted.get(path, headers={"X-Forwarded-For": f"198.51.100.{i}"}))
            too_many(await untrusted.get(path, headers={"X-Forwarded-For": "198.51.100.99"}))


# -- quotas ---------------------------------------------------------------------------


async def test_max_queues(settings: Settings) -> None:
    async with (
        running(limited(settings, app1=ApplicationLimits(max_queues=2))) as app,
        connect(app) as client,
    ):
        ok(await client.post("/v1/app1", data={"queue_name": "a"}, headers=APP1), 201)
        ok(await client.post("/v1/app1", data={"queue_name": "b"}, headers=APP1), 201)
        for fields in ({"queue_name": "c"}, {}):  # named, or named by the server
            response = await client.post("/v1/app1", data=fields, headers=APP1)
            assert set(error(response, 403)) == {"QuotaExceeded"}
        # Creating one that exists answers 200 as always; validation comes before the quota.
        ok(await client.post("/v1/app1", data={"queue_name": "a"}, headers=APP1), 200)
        response = await client.post(
            "/v1/app1", data={"queue_name": "c", "partitions": "0"}, headers=APP1
        )
        assert set(error(response, 400)) == {"partitions"}
        # Other applications have their own count; app1 may create once it deletes.
        ok(await client.post("/v1/app2", data={"queue_name": "c"}, headers=APP2), 201)
        ok(await client.delete("/v1/app1/b", headers=APP1))
        ok(await client.post("/v1/app1", data={"queue_name": "c"}, headers=APP1), 201)
        listed = ok(await client.get("/v1/app1", headers=APP1))["queues"]
        assert [q["queue_name"] for q in listed] == ["a", "c"]


async def test_max_queues_holds_under_concurrent_creations(settings: Settings) -> None:
    async with (
        running(limited(settings, app1=ApplicationLimits(max_queues=3))) as app,
        connect(app) as client,
    ):
        answers = await asyncio.gather(
            *(client.post("/v1/app1", data={"queue_name": f"q{i}"}, headers=APP1) for i in range(8))
        )
        assert sorted(a.status_code for a in answers) == [201] * 3 + [403] * 5
        assert len(ok(await client.get("/v1/app1", headers=APP1))["queues"]) == 3


# -- the buckets, by the clock ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal(limiter: RateLimiter, app: str | None, address: str = "a") -> int | None:
    try:
        limiter.admit(app, lambda: address)
    except TooManyRequests as exc:
        return exc.retry_after
    return None


def test_token_bucket_by_the_clock() -> None:
    clock = Clock()
    limiter = RateLimiter({"a": Rate(per_second=2, burst=3)}, clock=clock)
    assert [refusal(limiter, "a") for _ in range(4)] == [None, None, None, 1]
    clock.now += 0.4  # 0.8 token: still refused, nothing taken
    assert refusal(limiter, "a") == 1
    clock.now += 0.1  # 1.0 token
    assert refusal(limiter, "a") is None
    assert refusal(limiter, "a") == 1
    clock.now += 100  # refills up to the burst only
    assert [refusal(limiter, "a") for _ in range(4)] == [None, None, None, 1]
    assert refusal(limiter, "other") is None  # no limit configured
    assert refusal(limiter, None) is None  # no anonymous limit configured


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after(s) for s in (0.001, 1.0, 1.2, 59.01)] == [1, 1, 2, 60]
    clock = Clock()
    limiter = RateLimiter({"a": Rate(per_second=0.3, burst=1)}, clock=clock)
    assert refusal(limiter, "a") is None
    assert refusal(limiter, "a") == 4  # 3.33 s to the next token


def test_rate_of_settings() -> None:
    assert Rate.of(0) is None
    assert Rate.of(0, 10) is None
    assert Rate.of(5) == Rate(5, 5)
    assert Rate.of(0.5) == Rate(0.5, 1)  # a bucket must hold one whole request
    assert Rate.of(5, 20) == Rate(5, 20)


def test_anonymous_buckets_are_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter({}, Rate(per_second=1, burst=1), clock=clock, max_addresses=10)
    for i in range(10):
        assert refusal(limiter, None, f"10.0.0.{i}") is None
    assert refusal(limiter, None, "10.0.0.0") == 1
    clock.now += 5  # every bucket full again: all may go
    for i in range(50):
        assert refusal(limiter, None, f"10.1.0.{i}") is None
    assert len(limiter._addresses) <= 10


# -- configuration ------------------------------------------------------------------------


def configure(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "queuey.toml"
    path.write_text('[application_keys]\napp1 = ["key1"]\napp2 = ["key2"]\n' + text)
    return load(str(path), environ={})


def test_applications_tables(tmp_path: Path) -> None:
    settings = configure(
        tmp_path,
        "[applications.app1]\nrequests_per_second = 50\nburst = 100\nmax_queues = 1000\n"
        "[applications.app2]\nrequests_per_second = 2.5\n"
        "[limits]\nanonymous_requests_per_second = 1\nanonymous_burst = 10\n"
        '[server]\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n',
    )
    assert settings.applications == {
        "app1": ApplicationLimits(50.0, 100.0, 1000),
        "app2": ApplicationLimits(requests_per_second=2.5),
    }
    assert (settings.anonymous_requests_per_second, settings.anonymous_burst) == (1.0, 10.0)
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")
    assert configure(tmp_path, "").applications == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[applications.nobody]\nmax_queues = 1\n", "applications.nobody: no key in"),
        ("[applications.app1]\nspeed = 1\n", "applications.app1.speed: unknown setting"),
        ("[applications.app1]\nmax_queues = -1\n", "applications.app1.max_queues: must be at"),
        ("[applications.app1]\nmax_queues = 1.5\n", "applications.app1.max_queues: must be int"),
        ('[applications.app1]\nburst = "x"\n', "applications.app1.burst: must be float"),
        ("[applications.app1]\nburst = 0.5\n", "applications.app1.burst: must be 0"),
        ("[applications.app1]\nrequests_per_second = inf\n", "must be a finite number"),
        ("[applications]\napp1 = 5\n", "applications.app1: must be a table"),
        ("[limits]\nanonymous_burst = 0.2\n", "limits.anonymous_burst: must be 0"),
        ('[server]\ntrusted_proxies = ["10.0.0.300"]\n', "server.trusted_proxies: "),
        ('[metrics]\nallow = ["localhost"]\n', "metrics.allow: "),
        ('[server]\nlog_format = "xml"\n', 'server.log_format: "xml" is not one of text, json'),
    ],
)
def test_bad_limits_stop_the_start(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        configure(tmp_path, text)


def documented_rows() -> Iterator[str]:
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        found = re.match(r"\| `([\w.]+)` \|", line)
        if found:
            yield found[1]


def test_application_settings_are_documented() -> None:
    rows = set(documented_rows())
    for setting in APPLICATION_SETTINGS:
        assert f"{setting.section}.{setting.key}" in rows, setting
        assert getattr(ApplicationLimits(), setting.key) == setting.default
    assert {f for f in ApplicationLimits.__dataclass_fields__} == {
        s.key for s in APPLICATION_SETTINGS
    }


async def test_the_answers_are_documented(settings: Settings) -> None:
    """429 (and its Retry-After) and 403 QuotaExceeded conform to /openapi.json."""
    from tests.test_openapi import DOCUMENT, check

    limits = {
        "app1": ApplicationLimits(requests_per_second=SLOW, burst=1),
        "app2": ApplicationLimits(max_queues=1),
    }
    async with running(limited(settings, **limits)) as app, connect(app) as client:
        ok(await client.post("/v1/app2", data={"queue_name": "a"}, headers=APP2), 201)
        assert check(await client.post("/v1/app2", data={"queue_name": "b"}, headers=APP2)) == (
            "/v1/{app}",
            "post",
            403,
        )
        ok(await client.get("/v1/app1", headers=APP1))
        for method in ("GET", "HEAD", "POST"):
            response = await client.request(method, "/v1/app1", headers=APP1)
            assert check(response)[2] == 429
    documented = DOCUMENT["components"]["responses"]["TooManyRequests"]["headers"]
    assert documented["Retry-After"]["required"] is True
