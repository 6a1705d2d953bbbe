"""Routes: path templates of segments, matched on the request's segments.

A template such as ``/v1/{app}/{queue}`` is a list of literal segments and
``{name}`` parameters. A path matches a template of its length whose literals
it has; where several match, the one with more literal segments wins (so a
later ``/v1/{app}/{queue}/stream`` is not taken for message ids).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from queuey.api.http import Request, Response

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """One path template and its endpoint per method (HEAD answered as GET)."""

    path: str
    endpoints: Mapping[str, Endpoint]
    parts: tuple[str, ...] = field(init=False)
    literals: int = field(init=False)

    def __post_init__(self) -> None:
        parts = tuple(s for s in self.path.split("/") if s)
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "literals", sum(not p.startswith("{") for p in parts))
        if "GET" in self.endpoints and "HEAD" not in self.endpoints:
            object.__setattr__(self, "endpoints", {**self.endpoints, "HEAD": self.endpoints["GET"]})

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self.endpoints)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for part, segment in zip(self.parts, segments, strict=True):
            if part[0] == "{":
                params[part[1:-1]] = segment
            elif part != segment:
                return None
        return params


def route(path: str, **endpoints: Endpoint) -> Route:
    """``route("/v1/{app}", get=list_queues, post=create_queue)``."""
    return Route(path, {method.upper(): endpoint for method, endpoint in endpoints.items()})


class Router:
    """Finds the route of a path, most literal segments first."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._by_length: dict[int, list[Route]] = {}
        for r in sorted(routes, key=lambda r: -r.literals):
            self._by_length.setdefault(len(r.parts), []).append(r)

    def find(self, segments: list[str]) -> tuple[Route, dict[str, str]] | None:
        for candidate in self._by_length.get(len(segments), ()):
            params = candidate.match(segments)
            if params is not None:
                return candidate, params
        return None
