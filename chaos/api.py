"""HTTP to the Queuey under test: one client per actor, every failure classified.

A request either gets an answer (any status, a JSON body) or raises
:class:`NoAnswer`: the connection was refused or broke, or the answer did
not come in time. For a write, no answer means the outcome is unknown; the
history says so and the checker never assumes either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

APP = "chaos"
#: Connecting to a server that is down fails at once; a slow answer is given this long.
TIMEOUT = 30.0


class NoAnswer(Exception):
    """The request got no answer: its outcome is unknown."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]


class Api:
    """An application's HTTP client for one queue of the server under test."""

    def __init__(self, base_url: str, key: str, queue: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Application {key}"}
        self.queue = queue
        self.client = self._client()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=TIMEOUT)

    async def reset(self) -> None:
        """Forget every connection, as a consumer process that crashed and started again."""
        await self.client.aclose()
        self.client = self._client()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> Reply:
        try:
            response = await self.client.request(
                method,
                path,
                json=json,
                content=content,
                headers=headers,
                params=params,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise NoAnswer(f"{type(exc).__name__}: {exc}".strip().rstrip(":")) from None
        try:
            body = response.json()
        except ValueError:
            body = {"unparsed": response.text[:200]}
        if not isinstance(body, dict):
            body = {"unparsed": response.text[:200]}
        return Reply(response.status_code, body)

    # -- the paths --------------------------------------------------------------

    @property
    def queue_path(self) -> str:
        return f"/v1/{APP}/{self.queue}"

    def group_path(self, group: str, action: str = "") -> str:
        path = f"{self.queue_path}/groups/{group}"
        return f"{path}/{action}" if action else path
