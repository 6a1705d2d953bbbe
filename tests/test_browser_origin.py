"""A page on another origin reads Queuey in Chromium: EventSource and fetch under CORS.

The pages, the examples of docs/browsers.md as written there, are served by
a second small HTTP server on 127.0.0.1 (another port, so another origin)
that ``[cors] origins`` allows. They stream a public queue
without credentials and a private one with a scoped token in
``access_token=`` (EventSource cannot send headers), and the Queuey server
restarts under it: the browser reconnects by itself with Last-Event-ID, and
the ids it received must be exactly those posted, in order — no gap (messages
posted while it was away included) and no repeat. An origin that is not
allowed gets nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.browser_support import (
    Origin,
    browser_config,
    mint,
    no_page_errors,
    restart,
)
from tests.conftest import APP1, ROOT, Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

#: The example pages of docs/browsers.md, served as written there.
GUIDE = ROOT / "docs" / "browsers.md"


def example_pages() -> dict[str, str]:
    """``{"/stream.html": html, "/fetch.html": html}`` from the guide's marked examples."""
    found = re.findall(
        r"<!-- example page: (\S+) -->\n```html\n(.*?)```", GUIDE.read_text("utf-8"), re.S
    )
    pages = {f"/{name}": html for name, html in found}
    assert set(pages) == {"/stream.html", "/fetch.html"}, f"{GUIDE}: {sorted(pages)}"
    return pages


@pytest.fixture
def origin() -> Iterator[Origin]:
    with Origin(example_pages()) as allowed:
        yield allowed


@pytest.fixture
def queuey(serve: type[Server], tmp_path: Path, origin: Origin) -> Server:
    """A ``queuey serve`` whose [cors] origins allow ``origin`` (only)."""
    config = browser_config(
        tmp_path / "queuey.toml", f"sqlite:///{tmp_path / 'q.db'}", 5000, [origin.url]
    )
    return serve(config).start()


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def create(server: Server, name: str, **fields: Any) -> None:
    response = httpx.post(
        f"{server.url}/v1/app1", json={"queue_name": name, **fields}, headers=APP1, timeout=10
    )
    assert response.status_code == 201, response.text


def post(server: Server, queue: str, body: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/app1/{queue}", content=body.encode(), headers=APP1, timeout=10
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["messages"][0]["key"]
    return key


def received(tab: Page) -> list[str]:
    ids: list[str] = tab.evaluate("window.received")
    return ids


def opened(tab: Page, times: int) -> Callable[[], bool]:
    return lambda: bool(tab.evaluate("window.opened") >= times)


def arrived(tab: Page, count: int) -> Callable[[], bool]:
    return lambda: len(received(tab)) >= count


def failed(tab: Page) -> Callable[[], bool]:
    """The stream broke (the browser then retries by itself)."""
    return lambda: bool(tab.evaluate("window.errors") >= 1)


def test_event_source_on_another_origin_resumes_after_a_restart_without_gap_or_repeat(
    page: Page,
    queuey: Server,
    origin: Origin,
    serve: type[Server],
) -> None:
    create(queuey, "news", type="public", partitions=2)
    create(queuey, "private", partitions=2)
    token = mint(queuey, "key1", "app1", "private", scope="read", ttl=600)
    streams = {
        "news": f"{queuey.url}/v1/app1/news/stream",
        "private": f"{queuey.url}/v1/app1/private/stream?access_token={token}",
    }
    pages = {"news": page, "private": page.context.new_page()}
    posted: dict[str, list[str]] = {"news": [], "private": []}
    with no_page_errors(pages["news"]), no_page_errors(pages["private"]):
        for queue, tab in pages.items():
            tab.goto(f"{origin.url}/stream.html?{urlencode({'stream': streams[queue]})}")
            wait_for(opened(tab, 1))

        def publish(server: Server, count: int) -> None:
            for queue, ids in posted.items():
                for _ in range(count):
                    ids.append(post(server, queue, f"{queue} {len(ids) + 1}"))

        publish(queuey, 3)
        for queue, tab in pages.items():
            wait_for(arrived(tab, len(posted[queue])))
            assert received(tab) == posted[queue]

        # The server stops (its streams end); while it is away another server on the same
        # file takes posts, so the browser can only get those by resuming after its last id.
        queuey.stop()
        for tab in pages.values():
            wait_for(failed(tab))
        config = Path(queuey.command[queuey.command.index("--config") + 1])
        other = serve(config).start()
        publish(other, 2)
        other.stop()
        restart(queuey)
        publish(queuey, 1)
        for queue, tab in pages.items():
            wait_for(arrived(tab, len(posted[queue])))
        time.sleep(1.5)  # a repeat would come now
        for queue, tab in pages.items():
            assert received(tab) == posted[queue], queue
            assert tab.evaluate("window.opened") >= 2  # it did reconnect
            shown = tab.locator("#events li").all_text_contents()
            assert [text.split(": ", 1)[1] for text in shown] == [
                f"{queue} {n}" for n in range(1, 7)
            ]


def test_fetch_on_another_origin_reads_with_a_scoped_token(
    page: Page,
    queuey: Server,
    origin: Origin,
) -> None:
    create(queuey, "private")
    key = post(queuey, "private", "secret")
    token = mint(queuey, "key1", "app1", "private", scope="read", ttl=600)
    url = f"{queuey.url}/v1/app1/private?since=0"
    with no_page_errors(page):
        # An Authorization header makes the request preflighted: CORS must allow it.
        page.goto(f"{origin.url}/fetch.html?{urlencode({'url': url, 'token': token})}")
        answer = page.evaluate("window.answer")
        assert answer["status"] == 200, answer
        assert [(m["message_id"], m["body"]) for m in answer["body"]["messages"]] == [
            (key, "secret")
        ]
        # The token is for that queue only: another is refused, and the page can read why.
        create(queuey, "other")
        other = f"{queuey.url}/v1/app1/other"
        page.goto(f"{origin.url}/fetch.html?{urlencode({'url': other, 'token': token})}")
        answer = page.evaluate("window.answer")
        assert answer["status"] == 403
        assert "AccessDenied" in json.dumps(answer["body"])


def test_an_origin_that_is_not_allowed_gets_nothing(
    page: Page,
    queuey: Server,
) -> None:
    create(queuey, "news", type="public")
    post(queuey, "news", "not for them")
    stream = f"{queuey.url}/v1/app1/news/stream?since=0"
    with Origin(example_pages()) as stranger:
        page.goto(f"{stranger.url}/stream.html?{urlencode({'stream': stream})}")
        # CORS refuses the answer: the browser closes the stream for good (CLOSED = 2).
        wait_for(lambda: page.evaluate("window.state") == 2)
        assert received(page) == []
        assert page.evaluate("window.opened") == 0
