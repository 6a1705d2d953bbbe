"""The console's static files (``queuey/console/``), served under ``/console/``.

The console is a page that talks to the public API only (docs/browsers.md).
Its files are read once, when the routes are made, from the package; a path
is answered only if it names one of them exactly — a lookup in that table,
never a file system path built from the request — so no ``..`` or encoded
``/`` can reach another file. ``/console`` and ``/console/`` both answer the
page itself (SPEC §1: a trailing slash is never redirected); the page refers
to its files by absolute paths, so either URL works. Other names under
``/console/`` are a JSON 404, as everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from queuey.api.http import Request, Response
from queuey.api.routing import Route, route
from queuey.core.errors import NotFound

INDEX = "index.html"
TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
#: The page may load only its own files and talk only to its own server (the API).
#: No inline script or style, no framing (clickjacking), no <base>, no form posts.
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: Revalidated on every load (cheap: a 304 by ETag), so a new release is seen at once.
CACHE_CONTROL = b"no-cache"


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: bytes
    etag: bytes


@cache
def console_files() -> dict[str, StaticFile]:
    """The console's files by name, with their media types and ETags."""
    found: dict[str, StaticFile] = {}
    for entry in resources.files("queuey.console").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in TYPES:
            body = entry.read_bytes()
            etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
            found[entry.name] = StaticFile(body, TYPES[suffix], etag)
    return found


def _answer(request: Request, file: StaticFile) -> Response:
    headers = [
        (b"etag", file.etag),
        (b"cache-control", CACHE_CONTROL),
        (b"content-security-policy", CONTENT_SECURITY_POLICY),
        (b"x-content-type-options", b"nosniff"),
        # Stream URLs carry access_token=: never send a URL of this page elsewhere.
        (b"referrer-policy", b"no-referrer"),
    ]
    if file.etag in (t.strip().encode("latin-1") for t in _tags(request)):
        return Response(b"", 304, headers, media_type=file.media_type)
    return Response(file.body, 200, headers, media_type=file.media_type)


def _tags(request: Request) -> list[str]:
    return [t for value in request.header_list(b"if-none-match") for t in value.split(",")]


def routes() -> list[Route]:
    """``/console`` (the page) and ``/console/{file}`` (the page's files)."""
    files = console_files()
    index = files[INDEX]

    async def page(request: Request) -> Response:
        return _answer(request, index)

    async def static(request: Request) -> Response:
        file = files.get(request.params["file"])
        if file is None:
            raise NotFound()
        return _answer(request, file)

    return [route("/console", get=page), route("/console/{file}", get=static)]
