"""Request ids, the access log and the metrics (SPEC §9): in-process and on real servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from queuey.api.app import SAMPLE_SECONDS, QueueyApp, create_app
from queuey.api.metrics import DURATION_BUCKETS, Metrics
from queuey.config import Settings
from tests.api_support import error, ok
from tests.conftest import ALLOWED_ORIGIN, APP1, KEYS, ROOT, free_port, make_queue

HEX32 = re.compile(r"[0-9a-f]{32}")
TEXT_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) method=(?P<method>\S+) route=(?P<route>\S+)"
    r" status=(?P<status>\d+) duration_ms=(?P<duration>\d+\.\d{3}) app=(?P<app>\S+)"
    r" request_id=(?P<request_id>\S+)"
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The test settings on a SQLite file: none of this depends on the store, and the
    store's own series (group commits, purge) are SQLite's."""
    return Settings(
        storage_url=f"sqlite:///{tmp_path / 'queuey.db'}",
        application_keys=KEYS,
        cors_origins=(ALLOWED_ORIGIN,),
        max_message_bytes=1024,
        max_request_bytes=64 * 1024,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings) as app, connect(app) as found:
        yield found


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[QueueyApp]:
    app = create_app(settings)
    async with app.lifespan():
        yield app


@contextlib.asynccontextmanager
async def connect(app: QueueyApp, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as client:
        yield client


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text answer, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/__metrics__")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


# -- request ids -------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc-123", "x" * 128, "!", '~{["quoted"]}~', "A" * 64])
async def test_a_valid_request_id_is_echoed(client: httpx.AsyncClient, given: str) -> None:
    for method, path, headers in [
        ("GET", "/v1/app1", APP1),
        ("GET", "/nothing/here", {}),
        ("PATCH", "/v1/app1", APP1),
        ("GET", "/v1/app1", {"Authorization": "Application nope"}),
        ("GET", "/__lbheartbeat__", {}),
    ]:
        response = await client.request(method, path, headers={**headers, "X-Request-ID": given})
        assert response.headers["x-request-id"] == given, (method, path)


@pytest.mark.parametrize(
    "given", [b"x" * 129, b"has space", b"", b"tab\there", b"caf\xe9", b"a\x7f", b"\xff" * 5]
)
async def test_an_invalid_request_id_is_replaced(client: httpx.AsyncClient, given: bytes) -> None:
    headers = [(b"authorization", b"Application key1"), (b"x-request-id", given)]
    response = await client.get("/v1/app1", headers=headers)
    assert HEX32.fullmatch(response.headers["x-request-id"]), response.headers["x-request-id"]


async def test_every_answer_gets_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    found = set()
    for method, path, headers in [
        ("GET", "/v1/app1", APP1),
        ("HEAD", "/v1/app1", APP1),
        ("GET", "/nothing/here", {}),
        ("DELETE", "/__version__", {}),
        ("GET", "/v1/app1/nope", APP1),
        ("POST", "/v1/app1", {**APP1, "Content-Type": "application/json"}),
        ("OPTIONS", "/v1/app1/q", preflight),
        ("GET", "/openapi.json", {}),
    ]:
        response = await client.request(method, path, headers=headers)
        rid = response.headers["x-request-id"]
        assert HEX32.fullmatch(rid), (method, path)
        found.add(rid)
    assert len(found) == 8


# -- access log (in-process) ---------------------------------------------------------


def log_lines(text: str) -> list[dict[str, str]]:
    lines = [TEXT_LINE.fullmatch(line) for line in text.splitlines() if line]
    assert all(lines), text
    return [m.groupdict() for m in lines if m is not None]


async def test_one_text_line_per_request(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(settings) as app, connect(app) as client:
        queue = await make_queue(client)
        capsys.readouterr()
        await client.post(f"/v1/app1/{queue}", content=b"m", headers={**APP1, "X-Request-ID": "r1"})
        await client.get(
            f"/v1/app1/{queue}?access_token=SECRET&limit=5", headers={"X-Request-ID": "r2"}
        )
        await client.get("/nothing/here?access_token=SECRET", headers={"X-Request-ID": "r3"})
        await client.get(
            "/v1/app1", headers={"Authorization": "Application nope", "X-Request-ID": "r4"}
        )
        await client.options(
            "/v1/app1",
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "GET",
                "X-Request-ID": "r5",
            },
        )
        await client.get("/__heartbeat__", headers={**APP1, "X-Request-ID": "r6"})
        captured = capsys.readouterr()
    assert captured.out == ""
    lines = log_lines(captured.err)
    assert [(x["request_id"], x["method"], x["route"], x["status"], x["app"]) for x in lines] == [
        ("r1", "POST", "/v1/{app}/{queue}", "201", "app1"),
        ("r2", "GET", "/v1/{app}/{queue}", "401", "-"),  # not a token (SPEC §8)
        ("r3", "GET", "-", "404", "-"),
        ("r4", "GET", "/v1/{app}", "401", "-"),
        ("r5", "OPTIONS", "/v1/{app}", "200", "-"),
        ("r6", "GET", "/__heartbeat__", "200", "-"),
    ]
    for secret in ("SECRET", "key1", "nope", "access_token", queue):
        assert secret not in captured.err


async def test_json_lines_and_no_log_when_off(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(settings.replace(log_format="json")) as app, connect(app) as client:
        capsys.readouterr()
        await client.get("/v1/app1", headers={**APP1, "X-Request-ID": "j1"})
        await client.get("/v1/app1/q/groups", headers={**APP1, "X-Request-ID": "j2"})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [set(x) for x in lines] == [
        {"time", "method", "route", "status", "duration_ms", "app", "request_id"}
    ] * 2
    assert [(x["route"], x["status"], x["app"], x["request_id"]) for x in lines] == [
        ("/v1/{app}", 200, "app1", "j1"),
        ("/v1/{app}/{queue}/groups", 404, "app1", "j2"),
    ]
    assert isinstance(lines[0]["duration_ms"], float) and lines[0]["duration_ms"] >= 0
    async with running(settings.replace(access_log=False)) as app, connect(app) as client:
        capsys.readouterr()
        ok(await client.get("/v1/app1", headers=APP1))
        assert capsys.readouterr().err == ""


# -- metrics (in-process) ----------------------------------------------------------------


async def test_metrics_count_requests_messages_and_commits(settings: Settings) -> None:
    async with running(settings) as app, connect(app) as client:
        queue = await make_queue(client)
        for i in range(3):
            await client.post(f"/v1/app1/{queue}", content=f"m{i}".encode(), headers=APP1)
        batch = {"messages": [{"body": "a"}, {"body": "b"}]}
        await client.post(f"/v1/app1/{queue}", json=batch, headers=APP1)
        assert len(ok(await client.get(f"/v1/app1/{queue}", headers=APP1))["messages"]) == 5
        await client.get("/nothing/here")
        ok(await client.put(f"/v1/app1/{queue}/groups/g", headers=APP1), 201)
        claimed = ok(
            await client.post(f"/v1/app1/{queue}/groups/g/claim", json={"limit": 3}, headers=APP1)
        )
        receipts = [m["receipt"] for m in claimed["messages"]]
        ok(
            await client.post(
                f"/v1/app1/{queue}/groups/g/ack", json={"receipts": receipts[:2]}, headers=APP1
            )
        )
        await client.post(
            f"/v1/app1/{queue}/groups/g/release", json={"receipts": receipts[2:]}, headers=APP1
        )
        # Delivered again: the first receipt of that message is lost.
        again = ok(await client.post(f"/v1/app1/{queue}/groups/g/claim", headers=APP1))
        assert len(again["messages"]) == 3  # the released one and the two never claimed
        lost = await client.post(
            f"/v1/app1/{queue}/groups/g/ack", json={"receipts": receipts[2:]}, headers=APP1
        )
        assert lost.status_code == 409
        found = await scrape(client)
        text = (await client.get("/__metrics__")).text
    assert (
        value(
            found, "queuey_requests_total", route="/v1/{app}/{queue}", method="POST", status="201"
        )
        == 4
    )
    assert value(found, "queuey_requests_total", route="-", method="GET", status="404") == 1
    assert (
        value(
            found,
            "queuey_requests_total",
            route="/v1/{app}/{queue}/groups/{group}/ack",
            method="POST",
            status="409",
        )
        == 1
    )
    assert value(found, "queuey_request_duration_seconds_count", route="/v1/{app}/{queue}") == 5
    assert value(found, "queuey_messages_posted_total", application="app1") == 5
    assert value(found, "queuey_messages_read_total", application="app1") == 5
    assert value(found, "queuey_messages_delivered_total", application="app1") == 6
    assert value(found, "queuey_messages_acknowledged_total", application="app1") == 2
    assert value(found, "queuey_leases_lost_total", application="app1") == 1
    assert value(found, "queuey_sqlite_commit_jobs_count") >= 6
    assert value(found, "queuey_sqlite_commit_seconds_count", fsync="true") >= 6
    assert value(found, "queuey_requests_in_progress") == 1  # the scrape itself
    for name in (
        "queuey_request_duration_seconds_bucket",
        "queuey_held_reads",
        "queuey_storage_errors_total",
        "queuey_purged_rows_total",
        "queuey_sqlite_commit_jobs_bucket",
    ):
        assert f"\n{name}" in text, name


async def test_held_reads_purge_and_storage_errors(settings: Settings) -> None:
    async with running(settings) as app, connect(app) as client:
        queue = await make_queue(client)
        ok(await client.put(f"/v1/app1/{queue}/groups/g", headers=APP1), 201)
        claim = asyncio.ensure_future(
            client.post(f"/v1/app1/{queue}/groups/g/claim", json={"wait": 5}, headers=APP1)
        )
        deadline = time.monotonic() + 3
        while value(await scrape(client), "queuey_held_reads") != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await client.post(f"/v1/app1/{queue}", content=b"wake", headers=APP1)
        assert len(ok(await claim)["messages"]) == 1
        assert value(await scrape(client), "queuey_held_reads") == 0
        # Purge progress: rows of expired messages.
        for _ in range(2):
            await client.post(f"/v1/app1/{queue}", content=b"short", headers={**APP1, "X-TTL": "1"})
        await asyncio.sleep(1.1)
        purge = app.service.storage.purge  # type: ignore[attr-defined]
        assert await purge() == 2
        assert value(await scrape(client), "queuey_purged_rows_total") == 2
        # Storage errors: every 503 StorageUnavailable.
        await app.service.storage.close()
        for path in ("/__heartbeat__", f"/v1/app1/{queue}"):
            assert set(error(await client.get(path, headers=APP1), 503)) == {"StorageUnavailable"}
        assert value(await scrape(client), "queuey_storage_errors_total") == 2


async def test_metrics_only_for_allowed_addresses(settings: Settings) -> None:
    configured = settings.replace(trusted_proxies=("10.0.0.1",))
    async with running(configured) as app:
        for address, headers, status in [
            ("127.0.0.1", {}, 200),
            ("127.9.9.9", {}, 200),
            ("::1", {}, 200),
            ("::ffff:127.0.0.1", {}, 200),
            ("192.0.2.1", {}, 403),
            ("192.0.2.1", {"X-Forwarded-For": "127.0.0.1"}, 403),  # not a trusted proxy
            ("10.0.0.1", {"X-Forwarded-For": "127.0.0.1, 10.0.0.1"}, 200),
            ("10.0.0.1", {"X-Forwarded-For": "192.0.2.1"}, 403),
            ("10.0.0.1", {}, 403),
        ]:
            async with connect(app, address) as client:
                response = await client.get("/__metrics__", headers=headers)
                assert response.status_code == status, (address, headers)
                if status == 403:
                    assert error(response, 403) == {
                        "AccessDenied": "Access was denied to this resource."
                    }
                head = await client.head("/__metrics__", headers=headers)
                assert (head.status_code, head.content) == (status, b"")
    async with (
        running(settings.replace(metrics_allow=("192.0.2.0/24",))) as app,
        connect(app, "192.0.2.77") as inside,
        connect(app) as local,
    ):
        assert (await inside.get("/__metrics__")).status_code == 200
        assert (await local.get("/__metrics__")).status_code == 403


# -- real servers ----------------------------------------------------------------------


class Process:
    """``queuey serve`` with its standard output and standard error in separate files."""

    def __init__(self, tmp_path: Path, extra: str = "", *flags: str) -> None:
        self.tmp = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        keys = "\n".join(f'{app} = ["{k[0]}"]' for app, k in KEYS.items())
        self.config = tmp_path / "queuey.toml"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n{extra}\n'
            f'[storage]\nurl = "sqlite:///{tmp_path / "q.db"}"\n\n'
            f"[application_keys]\n{keys}\n",
            encoding="utf-8",
        )
        self.flags = flags
        self.out = tmp_path / "stdout.log"
        self.err = tmp_path / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        command = [
            sys.executable, "-m", "queuey.cli", "serve", "--config", str(self.config), *self.flags,
        ]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(self.tmp)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"queuey serve exited: {self.err.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                headers = {"X-Request-ID": f"startup-{time.monotonic_ns()}"}
                if httpx.get(f"{self.url}/__lbheartbeat__", headers=headers).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError("queuey serve did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def metrics_dirs(self) -> list[Path]:
        return sorted(self.tmp.glob("queuey-metrics-*"))


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def send_partial_body(port: int) -> None:
    """A client that sends headers and part of its body, then goes away."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/app1/q HTTP/1.1\r\nHost: x\r\nAuthorization: Application key1\r\n"
            b"X-Request-ID: gone\r\nContent-Length: 1000\r\n\r\nonly part"
        )
        time.sleep(0.3)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_access_log_of_a_real_server(
    tmp_path: Path, processes: list[Process], log_format: str
) -> None:
    server = Process(tmp_path, f'log_format = "{log_format}"')
    processes.append(server.start())
    url = server.url
    sent = {
        "list": httpx.get(f"{url}/v1/app1", headers={**APP1, "X-Request-ID": "list"}),
        "create": httpx.post(
            f"{url}/v1/app1", data={"queue_name": "q"}, headers={**APP1, "X-Request-ID": "create"}
        ),
        "token": httpx.get(
            f"{url}/v1/app1/q?access_token=SECRET-TOKEN", headers={"X-Request-ID": "token"}
        ),
        "bad": httpx.get(
            f"{url}/v1/app1",
            headers={"Authorization": "Application wrong-key", "X-Request-ID": "bad"},
        ),
        "none": httpx.get(
            f"{url}/no/such/path?access_token=SECRET-TOKEN", headers={"X-Request-ID": "none"}
        ),
    }
    # access_token=SECRET-TOKEN is no token: 401 InvalidToken (SPEC §8).
    assert [r.status_code for r in sent.values()] == [200, 201, 401, 401, 404]
    generated = httpx.get(f"{url}/v1/app1", headers=APP1).headers["x-request-id"]
    send_partial_body(server.port)
    time.sleep(0.3)
    server.stop()
    err = server.err.read_text()
    lines = err.splitlines()
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        entries = [{k: str(v) for k, v in e.items()} for e in entries]
    else:
        entries = log_lines(err)
    entries = [e for e in entries if not e["request_id"].startswith("startup-")]
    by_id = {e["request_id"]: e for e in entries}
    assert len(by_id) == len(entries)  # one line per request
    assert set(by_id) == {*sent, generated, "gone"}
    assert [(by_id[k]["route"], by_id[k]["status"], by_id[k]["app"]) for k in sent] == [
        ("/v1/{app}", "200", "app1"),
        ("/v1/{app}", "201", "app1"),
        ("/v1/{app}/{queue}", "401", "-"),
        ("/v1/{app}", "401", "-"),
        ("-", "404", "-"),
    ]
    assert (by_id["gone"]["route"], by_id["gone"]["status"]) == ("/v1/{app}/{queue}", "499")
    out = server.out.read_text()
    for secret in ("key1", "wrong-key", "SECRET", "access_token"):
        assert secret not in err + out
    for trouble in ("Traceback", "ERROR", "WARNING", "Exception"):
        assert trouble not in err + out, (trouble, err + out)


def test_metrics_are_summed_across_workers(tmp_path: Path, processes: list[Process]) -> None:
    server = Process(tmp_path, "", "--workers", "2")
    processes.append(server.start())
    (directory,) = server.metrics_dirs()
    sent = 0

    def workers_counted() -> set[str]:
        return {p.name for p in directory.glob("counter_*.db")}

    # New connections land on either worker; go on until both have answered some.
    deadline = time.monotonic() + 30
    while len(workers_counted()) < 2:
        assert time.monotonic() < deadline, "one worker answered everything"
        with httpx.Client() as one, httpx.Client() as other:
            answers = [c.get(f"{server.url}/v1/app1", headers=APP1) for c in (one, other)]
            sent += sum(a.status_code == 200 for a in answers)
    for _ in range(20):
        assert httpx.get(f"{server.url}/v1/app1", headers=APP1).status_code == 200
        sent += 1
    time.sleep(SAMPLE_SECONDS + 0.5)  # each worker writes its tallies every second
    scraped = []
    for _ in range(6):  # whichever worker answers, the same sums
        found = samples(httpx.get(f"{server.url}/__metrics__").text)
        scraped.append(
            value(found, "queuey_requests_total", route="/v1/{app}", method="GET", status="200")
        )
        assert value(found, "queuey_request_duration_seconds_count", route="/v1/{app}") == sent
    assert scraped == [sent] * 6
    assert len(workers_counted()) == 2
    server.stop()
    assert server.metrics_dirs() == []  # removed with the server


def test_tallied_requests_render_as_observed_ones_would() -> None:
    """Metrics.flush writes a second's tallies as one increment per series and bucket; what
    a scrape shows is what counting and observing each request would have shown."""
    tallied = Metrics()
    reference = CollectorRegistry()
    requests = Counter("queuey_requests", "", ["route", "method", "status"], registry=reference)
    duration = Histogram(
        "queuey_request_duration_seconds", "", ["route"], buckets=DURATION_BUCKETS,
        registry=reference,
    )  # fmt: skip
    posted = Counter("queuey_messages_posted", "", ["application"], registry=reference)
    seen = [0.0001, 0.001, 0.0025, 0.004, 0.2, 0.75, 7.0, 61.0, 61.0]  # bounds, between, past
    for i, seconds in enumerate(seen):
        route, status = ("/a", 200) if i % 3 else ("/b", 404)
        tallied.request(route, "GET", status, seconds)
        requests.labels(route, "GET", str(status)).inc()
        duration.labels(route).observe(seconds)
        tallied.count("posted", "app", i + 1)
        posted.labels("app").inc(i + 1)
    tallied.active += 2

    def series(text: bytes, prefixes: tuple[str, ...]) -> list[str]:
        return sorted(
            line
            for line in text.decode().splitlines()
            if line.startswith(prefixes) and "_created" not in line
        )

    names = ("queuey_requests_total", "queuey_request_duration", "queuey_messages_posted")
    assert tallied.registry is not None
    assert series(generate_latest(tallied.registry), names) == []  # tallied, not yet written
    shown = tallied.render()  # flushes first
    assert series(shown, names) == series(generate_latest(reference), names)
    assert "queuey_requests_in_progress 2.0" in shown.decode()
    tallied.flush()  # nothing new: counts stay
    assert series(tallied.render(), names) == series(generate_latest(reference), names)
