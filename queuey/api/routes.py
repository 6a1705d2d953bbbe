"""The /v1 endpoints: each resolves caller, application, queue and rights, then calls core.

Checks run in the order of the contract: unknown key (401) -> unknown
application (404) -> unknown queue (404) -> rights (403) -> rate limit (429)
-> body size (413) -> validation (400, in core) -> quota (403, in core).
Rights and the rate limit are one step, :meth:`V1.grant`, that every /v1
endpoint (consumer groups included) passes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from queuey.api.clients import ClientAddress
from queuey.api.http import OK, BodyTooLarge, Request, Response, json_response, unless_gone
from queuey.api.metrics import Metrics
from queuey.api.observe import CALLER
from queuey.api.routing import Route, route
from queuey.core.access import is_owner, may_consume, may_read, partitions_asked
from queuey.core.auth import Authentication, Principals
from queuey.core.errors import AccessDenied, InvalidJSON, NotFound, PayloadTooLarge
from queuey.core.ids import partitions_named
from queuey.core.limits import RateLimiter
from queuey.core.queues import Queue
from queuey.core.service import QueueService
from queuey.core.validation import parse_integer

_decode = msgspec.json.Decoder().decode


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


class V1:
    """The v1 API of one deployment: its applications, their credentials, the service."""

    def __init__(
        self,
        service: QueueService,
        authentication: Authentication,
        applications: frozenset[str],
        limiter: RateLimiter | None = None,
        client_address: ClientAddress | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.service = service
        self.queues = service.queues
        self.messages = service.messages
        self.authentication = authentication
        self.applications = applications
        self.max_request_bytes = service.limits.max_request_bytes
        self.limiter = limiter if limiter is not None and limiter.active else None
        self.client_address = client_address or ClientAddress()
        self.metrics = metrics

    # -- who, where, what ------------------------------------------------------

    async def _caller(self, request: Request) -> Principals:
        """The principals of the request; the first application among them noted in the scope.

        A request authenticated as several applications counts against the first
        (SPEC §2): the first ``Application`` credential of the header.
        """
        # Several Authorization headers count as one joined with ";" (SPEC §2).
        header = ";".join(request.header_list(b"authorization"))
        # access_token= counts on GET and HEAD only: EventSource cannot set headers (SPEC §8).
        access_token = None
        if request.scope["method"] in ("GET", "HEAD"):
            access_token = request.query.get("access_token") or None
        principals = await self.authentication.principals(header, access_token)
        apps = [p for p in principals if isinstance(p, str) and p.startswith("app:")]
        if len(apps) > 1:
            apps = [await self._first_application(header)]
        if apps:
            request.scope[CALLER] = apps[0][len("app:") :]
        return principals

    async def _first_application(self, header: str) -> str:
        for part in header.split(";"):
            scheme, _, _ = part.strip().partition(" ")
            if scheme.lower() == "application":
                (first,) = await self.authentication.principals(part)
                assert isinstance(first, str)
                return first
        raise AssertionError("several applications without an Application credential")

    def grant(self, request: Request, allowed: bool) -> None:
        """Rights (403), then the caller's rate limit (429): every /v1 endpoint passes here."""
        if not allowed:
            raise AccessDenied()
        if self.limiter is not None:
            self.limiter.admit(
                request.scope.get(CALLER), lambda: self.client_address(request.scope)
            )

    def count(self, event: str, app: str, number: int) -> None:
        """Messages ``posted``, ``read``, ``delivered`` or ``acknowledged`` (for the metrics)."""
        if self.metrics is not None:
            self.metrics.count(event, app, number)

    def _app(self, request: Request) -> str:
        app = request.params["app"]
        if app not in self.applications:
            raise NotFound(f"No application named {app[:100]!r} is known here.")
        return app

    async def queue(self, request: Request, for_writing: bool = False) -> tuple[Principals, Queue]:
        principals = await self._caller(request)
        app = self._app(request)
        queue = await self.queues.find(app, request.params["queue"], for_writing=for_writing)
        return principals, queue

    async def _body(self, request: Request) -> bytes:
        """The request body, or 413 as soon as it passes ``max_request_bytes``."""
        try:
            return await request.body(self.max_request_bytes)
        except BodyTooLarge as exc:
            if exc.declared is not None:
                raise PayloadTooLarge(
                    f"The request body has {exc.declared} bytes; the limit is {exc.limit}."
                ) from None
            raise PayloadTooLarge(
                f"The request body is over the limit of {exc.limit} bytes."
            ) from None

    async def fields(self, request: Request) -> dict[str, Any]:
        """A queue-management body: a JSON object, or form-encoded fields."""
        body = await self._body(request)
        if not body.strip():
            return {}
        if request.media_type == "application/json":
            document = _json(body)
            if not isinstance(document, dict):
                raise InvalidJSON("The request body must be a JSON object.")
            return document
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise InvalidJSON("The form body is not UTF-8 text.") from None

    # -- queues ----------------------------------------------------------------

    async def list_queues(self, request: Request) -> Response:
        principals = await self._caller(request)
        app = self._app(request)
        self.grant(request, is_owner(principals, app))
        return json_response(await self.queues.list(app, request.query))

    async def create_queue(self, request: Request) -> Response:
        principals = await self._caller(request)
        app = self._app(request)
        self.grant(request, is_owner(principals, app))
        fields = await self.fields(request)
        result, created = await self.queues.create(app, fields)
        return json_response(result, 201 if created else 200)

    async def update_queue(self, request: Request) -> Response:
        principals, queue = await self.queue(request)
        self.grant(request, is_owner(principals, queue.app))
        fields = await self.fields(request)
        return json_response(await self.queues.update(queue, fields))

    async def delete_queue(self, request: Request) -> Response:
        principals, queue = await self.queue(request)
        self.grant(request, is_owner(principals, queue.app))
        await self.queues.delete(queue)
        return json_response(OK)

    # -- messages --------------------------------------------------------------

    async def post_messages(self, request: Request) -> Response:
        principals, queue = await self.queue(request, for_writing=True)
        self.grant(request, is_owner(principals, queue.app))
        body = await self._body(request)
        if request.media_type == "application/json":
            posted = await self.messages.post_batch(queue, _json(body))
        else:
            posted = await self.messages.post_one(
                queue,
                body,
                request.header(b"content-type"),
                request.header(b"x-ttl"),
                request.header(b"x-partition"),
                request.header(b"x-idempotency-key"),
            )
        self.count("posted", queue.app, len(posted))
        return json_response({"status": "ok", "messages": posted}, 201)

    async def read_messages(self, request: Request) -> Response:
        principals, queue = await self.queue(request)
        asked = partitions_asked(request.query.get("partitions"), default=(1,))
        self.grant(request, may_read(principals, queue, asked))
        # HEAD ignores ``wait``: it answers headers only, at once.
        hold = request.method != "HEAD"
        read = self.messages.read(queue, request.query, hold=hold)
        if hold and request.query.get("wait", "").strip("0 +") != "":
            messages = await unless_gone(request.receive, read)  # a held read ends with its client
        else:
            messages = await read
        self.count("read", queue.app, len(messages))
        return json_response({"status": "ok", "messages": messages})

    async def get_messages(self, request: Request) -> Response:
        principals, queue = await self.queue(request)
        self.grant(request, may_read(principals, queue, partitions_named(request.params["ids"])))
        messages = await self.messages.get_by_ids(queue, request.params["ids"])
        self.count("read", queue.app, len(messages))
        return json_response({"status": "ok", "messages": messages})

    async def put_messages(self, request: Request) -> Response:
        principals, queue = await self.queue(request, for_writing=True)
        self.grant(request, is_owner(principals, queue.app))
        body = await self._body(request)
        await self.messages.put_by_ids(
            queue,
            request.params["ids"],
            body,
            request.header(b"content-type"),
            request.header(b"x-ttl"),
        )
        return json_response(OK)

    async def delete_messages(self, request: Request) -> Response:
        principals, queue = await self.queue(request)
        touched = partitions_named(request.params["ids"])
        self.grant(request, may_consume(principals, queue, touched))
        await self.messages.delete_by_ids(queue, request.params["ids"])
        return json_response(OK)

    def routes(self) -> list[Route]:
        return [
            route("/v1/{app}", get=self.list_queues, post=self.create_queue),
            route(
                "/v1/{app}/{queue}",
                get=self.read_messages,
                post=self.post_messages,
                put=self.update_queue,
                delete=self.delete_queue,
            ),
            route(
                "/v1/{app}/{queue}/{ids}",
                get=self.get_messages,
                put=self.put_messages,
                delete=self.delete_messages,
            ),
        ]
