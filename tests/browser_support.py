"""Browser tests' parts: Debian's Chromium driven by Playwright, a ``queuey serve`` set up
for browsers, and a second origin serving pages that talk to it.

The browser is the system's ``/usr/bin/chromium`` (Debian's ``chromium``
package), launched through Playwright's ``executable_path``: Playwright's own
browser download is never used. ``.ci/run`` installs the package in CI when it
is missing; elsewhere a machine without it skips these tests with the reason,
and in CI a missing browser fails them (the rule of tests/cassandra_node.py).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import KEYS, RESERVE, ROOT, Server, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

CHROMIUM = os.environ.get("QUEUEY_CHROMIUM", "/usr/bin/chromium")
#: Where the test run writes the console's screenshots (referenced from docs/browsers.md).
SCREENSHOTS = ROOT / "docs" / "console"
TOKEN_SECRET = "browser-tests-token-secret-0123456789abcdef"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is required in CI: {reason}")
    pytest.skip(f"Chromium not available: {reason}")


def chromium() -> str:
    """The path of Debian's Chromium, or skip (fail in CI) with the reason."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it in CI)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        unavailable(f"Playwright for Python is not installed ({exc}): pip install -e '.[test]'")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module (headless), closed at its end."""
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    # Assertions retry up to 15 s (not 5): a loaded CI machine is slower, never wrong.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            # Containers often run as root with a small /dev/shm.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own session storage) at desktop size, times shown in UTC."""
    context = browser.new_context(viewport=DESKTOP, timezone_id="UTC", locale="en-GB")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def browser_config(
    path: Path, storage_url: str, port: int, origins: list[str], extra: str = ""
) -> Path:
    """A server configuration with CORS for ``origins`` and a token secret (scoped tokens);
    ``extra``: more TOML (``[[auth.issuers]]``)."""
    keys = "\n".join(f'{app} = ["{k[0]}"]' for app, k in KEYS.items())
    allowed = ", ".join(f'"{o}"' for o in origins)
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[storage]\nurl = "{storage_url}"\nsettle_weak = 0.0\nsettle_strong = 0.0\n'
        f"reserve_bytes = {RESERVE}\n\n"
        f"[application_keys]\n{keys}\n\n"
        f"[cors]\norigins = [{allowed}]\n\n"
        f'[auth]\ntoken_secret = "{TOKEN_SECRET}"\n{extra}',
        encoding="utf-8",
    )
    return path


class Origin:
    """A second web origin: a small HTTP server on 127.0.0.1 serving fixed pages."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        served = pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = served.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Origin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def restart(server: Server) -> None:
    """Stop a server (SIGTERM: its streams end) and start it again on the same port."""
    server.stop()
    server.process = None
    server.start()


def mint(server: Server, app_key: str, app: str, queue: str, **fields: Any) -> str:
    """A scoped token for ``queue``, minted with an application key."""
    response = httpx.post(
        f"{server.url}/v1/{app}/{queue}/tokens",
        json=fields,
        headers={"Authorization": f"Application {app_key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def screenshot(page: Page, name: str) -> Path:
    """Save the page as docs/console/NAME.png (the documentation shows these)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


@contextlib.contextmanager
def no_page_errors(page: Page) -> Iterator[list[str]]:
    """Collect the page's uncaught errors and console errors; fail if there were any."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # An answer of 4xx is logged as "Failed to load resource" (the tests make some);
        # script errors and refused policies (CSP) are not.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text}")

    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", on_console)
    yield errors
    assert errors == [], errors
