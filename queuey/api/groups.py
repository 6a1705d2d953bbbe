"""The consumer-group endpoints (SPEC §6), under /v1/{app}/{queue}/groups.

Checks in the contract's order: 401 → unknown application (404) → unknown
queue (404) → rights (403) → rate limit (429, with the rights: ``V1.grant``)
→ unknown group (404) → body size (413) → validation (400). The owner
manages groups; those who may consume (``core.access.may_consume``) list
them, read their state and consume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queuey.api.http import OK, Request, Response, json_response
from queuey.api.routes import V1
from queuey.api.routing import Route, route
from queuey.core import validation as v
from queuey.core.access import is_owner, may_consume, partitions_asked, token_partitions
from queuey.core.auth import Principals
from queuey.core.errors import AccessDenied, LeaseLost
from queuey.core.groups import Groups
from queuey.core.queues import Queue
from queuey.storage.groups import Action


class GroupRoutes:
    """Endpoints of consumer groups, sharing the v1 endpoints' resolution of caller and queue."""

    def __init__(self, v1: V1, groups: Groups) -> None:
        self.v1 = v1
        self.groups = groups

    async def _consumer(self, request: Request, manage: bool = False) -> tuple[Principals, Queue]:
        principals, queue = await self.v1.queue(request)
        owner = is_owner(principals, queue.app)
        self.v1.grant(request, owner if manage else owner or may_consume(principals, queue))
        return principals, queue

    async def list_groups(self, request: Request) -> Response:
        _, queue = await self._consumer(request)
        return json_response(await self.groups.every(queue))

    async def put_group(self, request: Request) -> Response:
        _, queue = await self._consumer(request, manage=True)
        fields = await self.v1.fields(request)
        answer, created = await self.groups.put(queue, request.params["group"], fields)
        return json_response(answer, 201 if created else 200)

    async def get_group(self, request: Request) -> Response:
        _, queue = await self._consumer(request)
        group = await self.groups.find(queue, request.params["group"])
        return json_response(await self.groups.state(group))

    async def delete_group(self, request: Request) -> Response:
        _, queue = await self._consumer(request, manage=True)
        group = await self.groups.find(queue, request.params["group"])
        await self.groups.delete(group)
        return json_response(OK)

    async def _consume(self, request: Request) -> tuple[Any, dict[str, Any]]:
        """A claim's or a seek's group and body, the partitions it names within the caller's.

        A scoped token's partitions (SPEC §8) are checked once the body names
        them (403 after 413, before 400); without ``partitions`` the request
        takes the token's, as a stream does.
        """
        principals, queue = await self.v1.queue(request)
        self.v1.grant(request, may_consume(principals, queue))
        group = await self.groups.find(queue, request.params["group"])
        fields = await self.v1.fields(request)
        limit = token_partitions(principals, queue, consume=True)
        if limit is not None and not v.given(fields.get("partitions")):
            if not limit:
                raise AccessDenied()
            fields["partitions"] = sorted(limit)
        if not may_consume(principals, queue, partitions_asked(fields.get("partitions"))):
            raise AccessDenied()
        return group, fields

    async def claim(self, request: Request) -> Response:
        group, fields = await self._consume(request)
        answer = await self.groups.claim(group, fields)
        self.v1.count("delivered", group.queue.app, len(answer["messages"]))
        return json_response(answer)

    def _settle(self, action: Action) -> Any:
        async def endpoint(request: Request) -> Response:
            principals, queue = await self.v1.queue(request)
            self.v1.grant(request, may_consume(principals, queue))
            group = await self.groups.find(queue, request.params["group"])
            fields = await self.v1.fields(request)
            owner = is_owner(principals, queue.app)  # acknowledge-and-publish needs it
            # A scoped token settles receipts of its own partitions only (SPEC §8).
            allowed = token_partitions(principals, queue, consume=True)
            try:
                answer = await self.groups.settle(group, action, fields, owner, allowed)
            except LeaseLost as lost:
                self._settled(queue.app, lost.extra)
                raise
            self._settled(queue.app, answer)
            return json_response(answer)

        return endpoint

    def _settled(self, app: str, outcome: Mapping[str, Any]) -> None:
        """Count what an acknowledgement (or release, extension) did and lost, for the metrics."""
        self.v1.count("acknowledged", app, len(outcome.get("acknowledged", ())))
        self.v1.count("posted", app, len(outcome.get("published", ())))
        if self.v1.metrics is not None:
            self.v1.metrics.lost(app, len(outcome.get("lost", ())))

    async def seek(self, request: Request) -> Response:
        group, fields = await self._consume(request)
        return json_response(await self.groups.seek(group, fields))

    def routes(self) -> list[Route]:
        base = "/v1/{app}/{queue}/groups"
        return [
            route(base, get=self.list_groups),
            route(f"{base}/{{group}}", get=self.get_group, put=self.put_group,
                  delete=self.delete_group),
            route(f"{base}/{{group}}/claim", post=self.claim),
            route(f"{base}/{{group}}/ack", post=self._settle("ack")),
            route(f"{base}/{{group}}/release", post=self._settle("release")),
            route(f"{base}/{{group}}/extend", post=self._settle("extend")),
            route(f"{base}/{{group}}/seek", post=self.seek),
        ]  # fmt: skip
