"""The /v1 endpoints: each resolves caller, application, queue and rights, then calls the service.

Checks run in the order of the contract: unknown key (401) -> unknown
application (404) -> unknown queue (404) -> rights (403) -> body size (413) ->
validation (400, in the service).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queuey.api.responses import JSON, OK
from queuey.core.access import Principals, authenticate, is_owner, may_consume, may_read
from queuey.core.errors import (
    AccessDenied,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    ValidationError,
)
from queuey.core.service import QueueService
from queuey.core.validation import parse_integer
from queuey.storage.base import Queue, QueueChanged

_decode = msgspec.json.Decoder().decode
Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


def _service(request: Request) -> QueueService:
    service: QueueService = request.app.state.service
    return service


def _caller(request: Request) -> Principals:
    # Several Authorization headers count as one joined with ";" (SPEC §2).
    header = ";".join(request.headers.getlist("authorization"))
    return authenticate(header, request.app.state.authenticators)


def _app(request: Request) -> str:
    app: str = request.path_params["app"]
    if app not in request.app.state.applications:
        raise NotFound(f"No application named {app!r} is known here.")
    return app


def _require(allowed: bool) -> None:
    if not allowed:
        raise AccessDenied()


async def _queue(request: Request, for_writing: bool = False) -> tuple[Principals, Queue]:
    principals = _caller(request)
    app = _app(request)
    name = request.path_params["queue"]
    queue = await _service(request).find_queue(app, name, for_writing=for_writing)
    return principals, queue


async def _write_with_retry(
    request: Request, queue: Queue, write: Callable[[Queue], Awaitable[T]]
) -> T:
    """Run a write on a possibly cached queue; once more with a fresh read if it changed.

    A 400 found against a cached copy (say, a partition the queue has only
    since another process grew it) is also checked against a fresh read.
    """
    try:
        return await write(queue)
    except QueueChanged:
        pass
    except ValidationError:
        fresh = await _service(request).find_queue(queue.app, queue.name)
        if fresh == queue and fresh.handle == queue.handle:
            raise
        return await write(fresh)
    return await write(await _service(request).find_queue(queue.app, queue.name))


async def _body(request: Request) -> bytes:
    """The request body, or 413 as soon as it passes ``max_request_bytes``."""
    limit = _service(request).limits.max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body has {declared} bytes; the limit is {limit}.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def _json(body: bytes) -> Any:
    try:
        return _decode(body)
    except msgspec.ValidationError:
        # Valid JSON with a number msgspec cannot hold (thousands of digits): decode
        # again with such numbers clamped (validation.HUGE), for the field's own rule.
        return _json_with_long_numbers(body)
    # msgspec raises UnicodeDecodeError, not DecodeError, for bad UTF-8 inside a string.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"The request body is not valid JSON: {exc}") from None


def _json_with_long_numbers(body: bytes) -> Any:
    try:
        return json.loads(body, parse_int=parse_integer, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidJSON(f"The request body is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _fields(request: Request) -> dict[str, Any]:
    """A queue-management body: a JSON object, or form-encoded fields."""
    body = await _body(request)
    if not body.strip():
        return {}
    if _is_json(request):
        document = _json(body)
        if not isinstance(document, dict):
            raise InvalidJSON("The request body must be a JSON object.")
        return document
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise InvalidJSON("The form body is not UTF-8 text.") from None


# -- queues -------------------------------------------------------------------


async def list_queues(request: Request) -> Response:
    principals = _caller(request)
    app = _app(request)
    _require(is_owner(principals, app))
    return JSON(await _service(request).list_queues(app, request.query_params))


async def create_queue(request: Request) -> Response:
    principals = _caller(request)
    app = _app(request)
    _require(is_owner(principals, app))
    fields = await _fields(request)
    result, created = await _service(request).create_queue(app, fields)
    return JSON(result, status_code=201 if created else 200)


async def update_queue(request: Request) -> Response:
    principals, queue = await _queue(request)
    _require(is_owner(principals, queue.app))
    fields = await _fields(request)
    return JSON(await _service(request).update_queue(queue, fields))


async def delete_queue(request: Request) -> Response:
    principals, queue = await _queue(request)
    _require(is_owner(principals, queue.app))
    await _service(request).delete_queue(queue)
    return JSON(OK)


# -- messages -----------------------------------------------------------------


async def post_messages(request: Request) -> Response:
    principals, queue = await _queue(request, for_writing=True)
    _require(is_owner(principals, queue.app))
    body = await _body(request)
    service = _service(request)
    headers = request.headers
    document = _json(body) if _is_json(request) else None

    async def post(target: Queue) -> list[dict[str, Any]]:
        if document is not None:
            return await service.post_batch(target, document)
        return await service.post_one(
            target,
            body,
            headers.get("content-type"),
            headers.get("x-ttl"),
            headers.get("x-partition"),
        )

    posted = await _write_with_retry(request, queue, post)
    return JSON({"status": "ok", "messages": posted}, status_code=201)


async def read_messages(request: Request) -> Response:
    principals, queue = await _queue(request)
    _require(may_read(principals, queue))
    messages = await _service(request).read(queue, request.query_params)
    return JSON({"status": "ok", "messages": messages})


async def get_messages(request: Request) -> Response:
    principals, queue = await _queue(request)
    _require(may_read(principals, queue))
    messages = await _service(request).get_by_ids(queue, request.path_params["ids"])
    return JSON({"status": "ok", "messages": messages})


async def put_messages(request: Request) -> Response:
    principals, queue = await _queue(request, for_writing=True)
    _require(is_owner(principals, queue.app))
    body = await _body(request)

    async def put(target: Queue) -> None:
        await _service(request).put_by_ids(
            target,
            request.path_params["ids"],
            body,
            request.headers.get("content-type"),
            request.headers.get("x-ttl"),
        )

    await _write_with_retry(request, queue, put)
    return JSON(OK)


async def delete_messages(request: Request) -> Response:
    principals, queue = await _queue(request)
    _require(may_consume(principals, queue))
    await _service(request).delete_by_ids(queue, request.path_params["ids"])
    return JSON(OK)


def _by_method(path: str, **handlers: Endpoint) -> Route:
    """One route per path dispatching on the method, so a 405 lists every allowed method."""
    table = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in table:
        table["HEAD"] = table["GET"]

    async def endpoint(request: Request) -> Response:
        return await table[request.method](request)

    return Route(path, endpoint, methods=list(table), name=path)


routes = [
    _by_method("/v1/{app}", get=list_queues, post=create_queue),
    _by_method(
        "/v1/{app}/{queue}",
        get=read_messages,
        post=post_messages,
        put=update_queue,
        delete=delete_queue,
    ),
    _by_method(
        "/v1/{app}/{queue}/{ids}", get=get_messages, put=put_messages, delete=delete_messages
    ),
]
