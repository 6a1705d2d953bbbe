"""The console end to end: Debian's Chromium (Playwright) against a real ``queuey serve``.

Each test signs in as a person would, does what the console is for, and
checks what the page shows against what the server holds. The screenshots
of docs/console/ (desktop and phone width) are made here. A machine without
/usr/bin/chromium skips these tests outside CI (tests/browser_support.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

from tests.browser_support import (
    DESKTOP,
    PHONE,
    TOKEN_SECRET,
    browser_config,
    mint,
    no_page_errors,
    restart,
    screenshot,
)
from tests.conftest import APP1, Server
from tests.oidc_support import AUDIENCE, Issuer, running_issuer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow


@pytest.fixture
def queuey(serve: type[Server], tmp_path: Path) -> Server:
    """A ``queuey serve`` on a fresh SQLite file, with a token secret (the live tail)."""
    config = browser_config(tmp_path / "queuey.toml", f"sqlite:///{tmp_path / 'q.db'}", 5000, [])
    return serve(config).start()


@pytest.fixture
def api(queuey: Server) -> Iterator[httpx.Client]:
    """Another client of the same server, as app1 (what the console must then show)."""
    with httpx.Client(base_url=f"{queuey.url}/v1/app1", headers=APP1, timeout=10) as client:
        yield client


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def sign_in(tab: Page, queuey: Server, secret: str = "key1", scheme: str = "Application") -> None:
    tab.goto(f"{queuey.url}/console")
    tab.fill("#signin input[name=app]", "app1")
    tab.select_option("#signin select[name=scheme]", scheme)
    tab.fill("#signin input[name=secret]", secret)
    tab.click("#signin button[type=submit]")


def post(api: httpx.Client, queue: str, body: str, partition: int) -> dict[str, Any]:
    response = api.post(f"/{queue}", content=body.encode(), headers={"X-Partition": str(partition)})
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()["messages"][0]
    return message


def bodies(tab: Page, partition: int) -> Any:
    return tab.locator(f'table.messages[data-partition="{partition}"] td.body')


def test_sign_in_create_post_live_tail_rewind_and_delete(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    see = expect()
    with no_page_errors(page):
        page.goto(f"{queuey.url}/console/")
        see(page.locator("#signin")).to_be_visible()
        see(page.locator("#sign-out")).to_be_hidden()
        screenshot(page, "sign-in")

        # A key the server does not know: its error, as it said it, and still signed out.
        sign_in(page, queuey, secret="nope")
        see(page.locator("#error")).to_have_text(
            "InvalidApplicationKey: No application is known by that key."
        )
        see(page.locator("#signin")).to_be_visible()
        page.fill("#signin input[name=secret]", "key1")
        page.click("#signin button[type=submit]")
        see(page.locator("#queues")).to_be_visible()
        see(page.locator("#who")).to_have_text("app1 · application key")
        # Kept in this tab's session storage only.
        assert page.evaluate("localStorage.length") == 0
        assert "key1" in page.evaluate("JSON.stringify(sessionStorage)")

        # Create a queue.
        page.fill("#create-queue input[name=queue_name]", "orders")
        page.fill("#create-queue input[name=partitions]", "2")
        page.click("#create-queue button[type=submit]")
        see(page.locator("#queue-title")).to_have_text("orders")
        see(page.locator("#queue-meta")).to_contain_text("2 partitions · user · strong")
        settings = api.get("", params={"details": "1"}).json()["queues"]
        assert [(q["queue_name"], q["partitions"]) for q in settings] == [("orders", 2)]

        # Post through the console: stored with its partition, shown in its table.
        page.fill("#post textarea[name=body]", "first from the console")
        page.fill("#post input[name=partition]", "1")
        page.click("#post button[type=submit]")
        see(page.locator("#notice")).to_contain_text("to partition 1")
        see(bodies(page, 1)).to_have_text(["first from the console"])
        stored = api.get("/orders", params={"partitions": "1"}).json()["messages"]
        assert [m["body"] for m in stored] == ["first from the console"]

        # The live tail: what arrives from now on, newest first, nothing from before (the
        # newest message is in partition 2 when it starts, the newest of partition 1 older).
        post(api, "orders", "before the tail", 2)
        page.click("#tail-toggle")
        see(page.locator("#tail-status")).to_have_text("live")
        live1 = post(api, "orders", "live 1", 2)
        live2 = post(api, "orders", "live 2", 1)
        page.fill("#post textarea[name=body]", "live 3")
        page.fill("#post input[name=partition]", "2")
        page.click("#post button[type=submit]")
        rows = page.locator("#tail tbody tr")
        see(rows).to_have_count(3)
        see(page.locator("#tail td.body")).to_have_text(["live 3", "live 2", "live 1"])
        ids = [rows.nth(i).get_attribute("data-id") for i in range(3)]
        assert ids[1:] == [live2["key"], live1["key"]]
        page.click("#tail-toggle")
        see(page.locator("#tail-status")).to_have_text("stopped")

        # Rewind by time: from a whole second between two messages.
        before = post(api, "orders", "before the mark", 1)
        mark = math.floor(float(before["timestamp"])) + 1
        while time.time() < mark + 0.05:
            time.sleep(0.05)
        post(api, "orders", "after the mark 1", 1)
        post(api, "orders", "after the mark 2", 2)
        mark_text = datetime.fromtimestamp(mark, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        page.fill("#read input[name=time]", mark_text)
        page.click("#rewind")
        see(bodies(page, 1)).to_have_text(["after the mark 1"])
        see(bodies(page, 2)).to_have_text(["after the mark 2"])
        screenshot(page, "queue")

        # Older: everything before the mark, per partition, oldest first; newer: back again.
        page.click("#older")
        see(bodies(page, 1)).to_have_text(["first from the console", "live 2", "before the mark"])
        see(bodies(page, 2)).to_have_text(["before the tail", "live 1", "live 3"])
        page.click("#newer")
        see(bodies(page, 1)).to_have_text(["after the mark 1"])
        see(bodies(page, 2)).to_have_text(["after the mark 2"])

        # Delete one message: gone from the page and from the server.
        page.check('table.messages[data-partition="1"] input[type=checkbox]')
        page.click("#delete-selected")
        see(page.locator("#notice")).to_have_text("Deleted 1 message.")
        see(bodies(page, 1)).to_have_count(0)
        see(bodies(page, 2)).to_have_text(["after the mark 2"])
        left = api.get("/orders", params={"partitions": "1,2"}).json()["messages"]
        assert "after the mark 1" not in [m["body"] for m in left]
        assert len(left) == 7

        # At phone width: the same view in one column, nothing wider than the screen.
        page.set_viewport_size(PHONE)
        page.click("#newest")
        see(bodies(page, 2)).to_have_text(
            ["before the tail", "live 1", "live 3", "after the mark 2"]
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "queue-phone")

        page.click("a.brand")
        see(page.locator("#queues td a")).to_have_text(["orders"])
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "queues-phone")


def test_queue_list_pages_with_next(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    see = expect()
    names = [f"q{i:02d}" for i in range(23)]
    for name in names:
        assert api.post("", json={"queue_name": name}).status_code == 201
    post(api, "q05", "one", 1)
    with no_page_errors(page):
        sign_in(page, queuey)
        links = page.locator("#queues td a")
        see(links).to_have_text(names[:20])
        see(page.locator("#queues-first")).to_be_disabled()
        row = page.locator("#queues tbody tr", has_text="q05")
        see(row.locator('td[data-label="Messages"]')).to_have_text("1")
        screenshot(page, "queues")
        page.click("#queues-next")
        see(links).to_have_text(names[20:])
        see(page.locator("#queues-next")).to_be_disabled()
        page.click("#queues-first")
        see(links).to_have_text(names[:20])
        # Signing out forgets the key.
        page.click("#sign-out")
        see(page.locator("#signin")).to_be_visible()
        see(page.locator("#sign-out")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0


def test_errors_show_the_servers_messages(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    see = expect()
    with no_page_errors(page):
        sign_in(page, queuey)
        see(page.locator("#queues")).to_be_visible()
        page.fill("#create-queue input[name=queue_name]", "no spaces")
        page.fill("#create-queue input[name=partitions]", "500")
        page.click("#create-queue button[type=submit]")
        error = page.locator("#error")
        # Every invalid field at once, as the server reported them.
        see(error).to_contain_text("partitions: 500 is greater than maximum value 200")
        see(error).to_contain_text("queue_name: ")
        assert api.get("").json()["queues"] == []
        # A bad `since`, typed into the time control: the server's 400.
        assert api.post("", json={"queue_name": "orders"}).status_code == 201
        page.goto(f"{queuey.url}/console#/q/orders")
        see(page.locator("#queue-title")).to_have_text("orders")
        page.fill("#read input[name=since]", "yesterday")
        page.click("#rewind")
        see(error).to_contain_text("since: ")
        # An unknown queue.
        page.goto(f"{queuey.url}/console#/q/nope")
        see(error).to_have_text("InvalidQueueName: Queue of that name was not found.")


def test_a_scoped_token_opens_one_queue_and_tails_it(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    see = expect()
    assert api.post("", json={"queue_name": "feed"}).status_code == 201
    old = post(api, "feed", "already there", 1)
    token = mint(queuey, "key1", "app1", "feed", scope="read", ttl=600)
    with no_page_errors(page):
        sign_in(page, queuey, secret=token, scheme="Bearer")
        see(page.locator("#who")).to_have_text("app1 · bearer token")
        # A token cannot list the application's queues: the server says so.
        see(page.locator("#error")).to_contain_text("AccessDenied")
        page.fill("#open-queue input[name=queue_name]", "feed")
        page.click("#open-queue button[type=submit]")
        see(page.locator("#queue-title")).to_have_text("feed")
        see(page.locator("#queue-meta")).to_have_text(
            "Only the owning application sees a queue's settings."
        )
        see(bodies(page, 1)).to_have_text(["already there"])
        # The tail: a token that cannot mint another uses itself.
        page.click("#tail-toggle")
        see(page.locator("#tail-status")).to_have_text("live")
        new = post(api, "feed", "fresh", 1)
        see(page.locator("#tail tbody tr")).to_have_count(1)
        assert page.locator("#tail tbody tr").get_attribute("data-id") == new["key"] != old["key"]
        # Posting is beyond a read token: refused, and said why.
        page.fill("#post textarea[name=body]", "not allowed")
        page.click("#post button[type=submit]")
        see(page.locator("#error")).to_contain_text("AccessDenied")
        assert len(api.get("/feed").json()["messages"]) == 2


def test_consumer_group_state_and_seek(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    see = expect()
    assert api.post("", json={"queue_name": "jobs", "partitions": 2}).status_code == 201
    for i in range(3):
        post(api, "jobs", f"job {i}", 1)
    post(api, "jobs", "job 3", 2)
    assert api.put("/jobs/groups/billing", json={"lease_seconds": 600}).status_code == 201
    claim = api.post(
        "/jobs/groups/billing/claim", json={"limit": 1, "consumer": "worker-a", "partitions": [1]}
    )
    assert [m["body"] for m in claim.json()["messages"]] == ["job 0"]
    with no_page_errors(page):
        sign_in(page, queuey)
        see(page.locator("#queues")).to_be_visible()
        page.goto(f"{queuey.url}/console#/q/jobs")
        page.click("#groups-link")
        see(page.locator("#groups td a")).to_have_text(["billing"])
        page.click("#groups td a")
        see(page.locator("#group-title")).to_have_text("Group billing")
        see(page.locator("#group-meta")).to_contain_text("at_least_once · lease 600 s")
        first, second = (page.locator(f'#group-state tr[data-partition="{p}"]') for p in (1, 2))
        see(first.locator("td.pending")).to_have_text("3")
        see(first.locator("td.in-flight")).to_have_text("1")
        see(first.locator('td[data-label="Consumers"]')).to_have_text("worker-a")
        see(second.locator("td.pending")).to_have_text("1")
        see(page.locator('dd[data-counter="delivered"]')).to_have_text("1")
        screenshot(page, "group")
        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "group-phone")
        page.set_viewport_size(DESKTOP)

        # Seek partition 1 to its end: nothing pending there, the lease gone; 2 untouched.
        page.select_option("#seek select[name=to]", "latest")
        page.fill("#seek input[name=partitions]", "1")
        page.click("#seek button[type=submit]")
        see(first.locator("td.pending")).to_have_text("0")
        see(first.locator("td.in-flight")).to_have_text("0")
        see(second.locator("td.pending")).to_have_text("1")
        state = api.get("/jobs/groups/billing").json()
        assert [(p["pending"], p["in_flight"]) for p in state["partitions"]] == [(0, 0), (1, 0)]

        # Seek back by time, to before the first message: everything pending again.
        page.select_option("#seek select[name=to]", "time")
        page.fill("#seek input[name=time]", "2020-01-01T00:00:00")
        page.fill("#seek input[name=partitions]", "")
        page.click("#seek button[type=submit]")
        see(first.locator("td.pending")).to_have_text("3")

        # Create a group from the console.
        page.click("#crumbs a >> text=Groups")
        page.fill("#create-group input[name=group]", "audit")
        page.select_option("#create-group select[name=guarantee]", "exactly_once")
        page.click("#create-group button[type=submit]")
        see(page.locator("#group-title")).to_have_text("Group audit")
        see(page.locator("#group-meta")).to_contain_text("exactly_once")
        see(first.locator("td.pending")).to_have_text("3")
        groups = api.get("/jobs/groups").json()["groups"]
        assert [(g["group"], g["guarantee"]) for g in groups] == [
            ("audit", "exactly_once"),
            ("billing", "at_least_once"),
        ]


def test_the_live_tail_resumes_after_a_restart_with_a_new_token_secret(
    page: Page,
    queuey: Server,
    api: httpx.Client,
    serve: type[Server],
) -> None:
    """The server comes back with another secret: the tail's token is refused (401), the
    console mints a new one and goes on after the last message it showed."""
    see = expect()
    assert api.post("", json={"queue_name": "feed", "partitions": 2}).status_code == 201
    post(api, "feed", "before", 1)
    with no_page_errors(page):
        sign_in(page, queuey)
        see(page.locator("#queues")).to_be_visible()
        page.goto(f"{queuey.url}/console#/q/feed")
        page.click("#tail-toggle")
        see(page.locator("#tail-status")).to_have_text("live")
        shown = [post(api, "feed", "a1", 1)["key"], post(api, "feed", "a2", 2)["key"]]
        see(page.locator("#tail td.body")).to_have_text(["a2", "a1"])

        queuey.stop()
        see(page.locator("#tail-status")).to_have_text("reconnecting")
        config = Path(queuey.command[queuey.command.index("--config") + 1])
        config.write_text(config.read_text().replace(TOKEN_SECRET, "a-new-secret-" + "0" * 32))
        other = serve(config).start()  # posts while the server is away, on the same file
        with httpx.Client(base_url=f"{other.url}/v1/app1", headers=APP1, timeout=10) as away:
            shown.append(post(away, "feed", "c1", 2)["key"])
        other.stop()
        restart(queuey)
        shown += [post(api, "feed", "b1", 1)["key"], post(api, "feed", "b2", 2)["key"]]
        rows = page.locator("#tail tbody tr")
        see(page.locator("#tail td.body")).to_have_text(["b2", "b1", "c1", "a2", "a1"])
        see(page.locator("#tail-status")).to_have_text("live")
        time.sleep(1.5)  # a repeat would come now
        see(rows).to_have_count(5)
        assert [rows.nth(i).get_attribute("data-id") for i in range(5)] == shown[::-1]
    # The restarted server refused the browser's own reconnection (the old token), and the
    # console minted a new token (this log is the restarted server's).
    log = queuey.log.read_text()
    assert "route=/v1/{app}/{queue}/stream status=401" in log
    assert log.count("route=/v1/{app}/{queue}/tokens status=201") == 1


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    yield from running_issuer()


def test_a_person_signs_in_with_an_openid_connect_token(
    page: Page, serve: type[Server], tmp_path: Path, issuer: Issuer
) -> None:
    """A person (``bid:``, SPEC §8) named by a queue's principles reads, tails and deletes."""
    see = expect()
    trust = (
        f'\n[[auth.issuers]]\nissuer = "{issuer.name}"\naudience = "{AUDIENCE}"\n'
        f'jwks_url = "{issuer.jwks_url}"\n'
    )
    config = browser_config(
        tmp_path / "queuey.toml", f"sqlite:///{tmp_path / 'q.db'}", 5000, [], trust
    )
    queuey = serve(config).start()
    with httpx.Client(base_url=f"{queuey.url}/v1/app1", headers=APP1, timeout=10) as api:
        fields = {"queue_name": "inbox", "partitions": 2, "principles": "bid:alice@example.com"}
        assert api.post("", json=fields).status_code == 201
        post(api, "inbox", "for alice", 1)
        with no_page_errors(page):
            person = issuer.token("rsa1")
            sign_in(page, queuey, secret=person, scheme="Bearer")
            see(page.locator("#error")).to_contain_text("AccessDenied")  # not the owner
            page.fill("#open-queue input[name=queue_name]", "inbox")
            page.click("#open-queue button[type=submit]")
            see(bodies(page, 1)).to_have_text(["for alice"])
            # The person mints the tail's token: read scope on this queue, all partitions.
            page.click("#tail-toggle")
            see(page.locator("#tail-status")).to_have_text("live")
            later = post(api, "inbox", "later", 2)
            see(page.locator("#tail tbody tr")).to_have_count(1)
            assert page.locator("#tail tbody tr").get_attribute("data-id") == later["key"]
            # A person named by the principles may delete.
            page.check('table.messages[data-partition="1"] input[type=checkbox]')
            page.click("#delete-selected")
            see(page.locator("#notice")).to_have_text("Deleted 1 message.")
            # (Read as her: with principles, the owner itself may not read.)
            mine = {"Authorization": f"Bearer {person}"}
            left = api.get("/inbox", params={"partitions": "1,2"}, headers=mine).json()
            assert [m["body"] for m in left["messages"]] == ["later"]
    assert "route=/v1/{app}/{queue}/tokens status=201" in queuey.log.read_text()


def test_names_and_bodies_are_shown_as_text(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    """A queue name of SPEC §1's other characters, and a body of HTML, never run as code."""
    see = expect()
    name = "user:42+x@y=z~"
    assert api.post("", json={"queue_name": name}).status_code == 201
    html = '<b>bold</b><img src="x" onerror="window.ran = 1">'
    with no_page_errors(page):
        sign_in(page, queuey)
        page.click(f"#queues td a >> text={name}")
        see(page.locator("#queue-title")).to_have_text(name)
        page.fill("#post textarea[name=body]", html)
        page.fill("#post input[name=content_type]", "text/html")
        page.click("#post button[type=submit]")
        see(bodies(page, 1)).to_have_text([html])
        assert page.locator("table.messages img").count() == 0
        assert page.evaluate("window.ran") is None
        (stored,) = api.get(f"/{quote(name, safe='')}").json()["messages"]
        assert (stored["body"], stored["content_type"]) == (html, "text/html")


def test_pages_older_and_newer_partition_by_partition(
    page: Page,
    queuey: Server,
    api: httpx.Client,
) -> None:
    """Two a page: each partition pages on from its own last message; an emptied one waits."""
    see = expect()
    assert api.post("", json={"queue_name": "log", "partitions": 2}).status_code == 201
    post(api, "log", "m1", 1)
    post(api, "log", "n1", 2)
    for body in ("m2", "m3", "m4", "m5"):
        post(api, "log", body, 1)
    pages = [
        ("#oldest", ["m1", "m2"], ["n1"]),
        ("#newer", ["m3", "m4"], []),
        ("#newer", ["m5"], []),
        ("#newer", [], []),
        ("#older", ["m4", "m5"], ["n1"]),
        ("#older", ["m2", "m3"], []),
        ("#older", ["m1"], []),
        ("#newest", ["m4", "m5"], ["n1"]),
    ]
    with no_page_errors(page):
        sign_in(page, queuey)
        see(page.locator("#queues")).to_be_visible()
        page.goto(f"{queuey.url}/console#/q/log")
        see(page.locator("#queue-title")).to_have_text("log")
        page.fill("#read input[name=limit]", "2")
        for button, first, second in pages:
            page.click(button)
            see(bodies(page, 1)).to_have_text(first)
            see(bodies(page, 2)).to_have_text(second)
