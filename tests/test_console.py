"""The console's files under /console/ (api/console.py), over in-process HTTP.

What a browser needs of them — the page at /console and /console/, each file
with its media type, revalidation by ETag, a Content-Security-Policy — and
that nothing else is reachable: unknown names and traversal attempts are the
JSON 404 of every other path. The console at work in a browser is
tests/test_browser_console.py.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from queuey.api.app import QueueyApp, create_app
from queuey.api.console import CONTENT_SECURITY_POLICY
from queuey.api.http import Message
from queuey.config import Settings
from tests.conftest import KEYS, RESERVE, ROOT

CONSOLE = ROOT / "queuey" / "console"
SHIPPED = sorted(p.name for p in CONSOLE.iterdir() if p.suffix in {".html", ".js", ".css", ".svg"})
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[QueueyApp]:
    settings = Settings(
        storage_url=f"sqlite:///{tmp_path / 'queuey.db'}",
        application_keys=KEYS,
        storage_reserve_bytes=RESERVE,
    )
    queuey = create_app(settings)
    async with queuey.lifespan():
        yield queuey


@pytest.fixture
async def client(app: QueueyApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as c:
        yield c


async def raw(app: QueueyApp, raw_path: bytes, method: str = "GET") -> tuple[int, bytes]:
    """Send a path exactly as given (clients resolve ``..`` before sending; attackers do not)."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1234),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def test_every_console_file_is_package_data() -> None:
    """The wheel (and an editable install) carries every file the console serves."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["queuey.console"]
    assert SHIPPED, "the console has no files"
    assert "index.html" in SHIPPED
    for name in SHIPPED:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


@pytest.mark.parametrize("path", ["/console", "/console/", "/console//", "/console/index.html"])
async def test_the_page_is_answered_at_console_with_or_without_slash(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200  # never a redirect (SPEC §1)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == (CONSOLE / "index.html").read_bytes()
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY.decode()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])


@pytest.mark.parametrize("name", SHIPPED)
async def test_each_file_is_served_as_is_with_its_media_type(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/console/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == MEDIA_TYPES[Path(name).suffix]
    assert response.content == (CONSOLE / name).read_bytes()
    head = await client.head(f"/console/{name}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(response.content))
    assert head.headers["etag"] == response.headers["etag"]


async def test_an_unchanged_file_is_revalidated_with_a_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/console/app.js")
    etag = first.headers["etag"]
    again = await client.get("/console/app.js", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    listed = await client.get("/console/app.js", headers={"If-None-Match": f'"x", {etag}'})
    assert listed.status_code == 304
    other = await client.get("/console/app.js", headers={"If-None-Match": '"0123"'})
    assert (other.status_code, other.content) == (200, first.content)
    # Each file has its own version.
    assert (await client.get("/console/style.css")).headers["etag"] != etag


async def test_files_the_page_refers_to_are_all_served(client: httpx.AsyncClient) -> None:
    """Every /console/... of the page and of the modules' imports exists (no broken page)."""
    referred: set[str] = set()
    for name in SHIPPED:
        text = (CONSOLE / name).read_text("utf-8")
        referred |= set(re.findall(r"""["'](/console/[^"'?#]+)["']""", text))
    assert "/console/app.js" in referred
    assert "/console/tail.js" in referred
    for path in sorted(referred):
        response = await client.get(path)
        assert response.status_code == 200, path


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/console/nope.js",
        b"/console/__init__.py",  # in the package, but not a file of the console
        b"/console/..",
        b"/console/../pyproject.toml",
        b"/console/..%2F..%2Fpyproject.toml",
        b"/console/%2e%2e%2fapi%2fconsole.py",
        b"/console/..%5c..%5cpyproject.toml",
        b"/console/%2Fetc%2Fpasswd",
        b"/console/app.js%00.html",
        b"/console/sub/app.js",
        b"/console/app.js/x",
        b"/console/APP.JS",
    ],
)
async def test_unknown_names_and_traversal_are_a_json_404(app: QueueyApp, raw_path: bytes) -> None:
    status, body = await raw(app, raw_path)
    assert status == 404, raw_path
    assert httpx.Response(200, content=body).json() == {
        "status": "error",
        "error_msg": {"NotFound": "Nothing was found at this path."},
    }


@pytest.mark.parametrize("path", ["/console", "/console/app.js"])
async def test_other_methods_are_a_json_405(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert "MethodNotAllowed" in response.json()["error_msg"]


def test_the_page_has_no_inline_script_or_style() -> None:
    """The policy allows only the console's own files: inline code would be refused."""
    page = (CONSOLE / "index.html").read_text("utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "<style" not in page
    assert not re.search(r"\son[a-z]+=", page)  # onclick= and the like
    assert not re.search(r'\sstyle="', page)


def test_the_guide_shows_every_screenshot_the_browser_tests_make() -> None:
    """docs/browsers.md shows docs/console/*.png; tests/test_browser_console.py makes them."""
    guide = (ROOT / "docs" / "browsers.md").read_text("utf-8")
    shown = set(re.findall(r"\]\(console/([a-z-]+)\.png\)", guide))
    made = set(
        re.findall(
            r'screenshot\(page, "([a-z-]+)"\)',
            (ROOT / "tests" / "test_browser_console.py").read_text("utf-8"),
        )
    )
    assert shown == made
    for name in shown:
        assert (ROOT / "docs" / "console" / f"{name}.png").is_file(), name
    assert "(docs/browsers.md)" in (ROOT / "README.md").read_text("utf-8")
