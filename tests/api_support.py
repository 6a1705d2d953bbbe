"""Helpers of the HTTP API tests (``tests/test_api_*.py``): answer shapes, posting, reading."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import APP1

JSON_TYPE = {"Content-Type": "application/json"}
#: Ticks between the UUID epoch (1582-10-15) and the Unix epoch, as RFC 4122 defines them.
UNIX_EPOCH_TICKS = 0x01B21DD213814000


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    """The body of a success answer, after checking its status, media type and ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["status"] == "ok", body
    return body


def error(response: httpx.Response, status: int) -> dict[str, str]:
    """The ``error_msg`` of an error answer, after checking its status and JSON shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "error", body
    messages = body["error_msg"]
    assert isinstance(messages, dict) and messages, body
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in messages.items()), body
    return messages


async def post(
    client: httpx.AsyncClient, queue: str, body: str = "m", **headers: str
) -> dict[str, Any]:
    """Post one message to app1's ``queue``; its ``{"key", "timestamp", "partition"}``."""
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    response = await client.post(
        f"/v1/app1/{queue}", content=body.encode(), headers={**APP1, **headers}
    )
    posted: dict[str, Any] = ok(response, 201)["messages"][0]
    return posted


async def post_batch(
    client: httpx.AsyncClient, queue: str, *messages: dict[str, Any]
) -> list[dict[str, Any]]:
    """Post a batch to app1's ``queue``; the posted ``{"key", "timestamp", "partition"}``."""
    response = await client.post(f"/v1/app1/{queue}", json={"messages": messages}, headers=APP1)
    posted: list[dict[str, Any]] = ok(response, 201)["messages"]
    return posted


async def read(
    client: httpx.AsyncClient,
    queue: str,
    headers: dict[str, str] = APP1,
    **params: str | int,
) -> list[dict[str, Any]]:
    """The messages of a range read of app1's ``queue``."""
    response = await client.get(f"/v1/app1/{queue}", params=params, headers=headers)
    messages: list[dict[str, Any]] = ok(response)["messages"]
    return messages


async def read_ids(
    client: httpx.AsyncClient, queue: str, ids: str, headers: dict[str, str] = APP1
) -> list[dict[str, Any]]:
    """The messages of a read by ids of app1's ``queue``."""
    response = await client.get(f"/v1/app1/{queue}/{ids}", headers=headers)
    messages: list[dict[str, Any]] = ok(response)["messages"]
    return messages


def tick_timestamp(message_id: str) -> str:
    """The wire timestamp of a version-1 UUID's tick, computed independently of the server."""
    unix = uuid.UUID(message_id).time - UNIX_EPOCH_TICKS
    return f"{unix // 10_000_000}.{unix % 10_000_000:07d}"


def order_key(message_id: str) -> tuple[int, bytes]:
    """Storage order of an id: the UUID's timestamp, then bytes 8-15 unsigned."""
    value = uuid.UUID(message_id)
    return value.time, value.bytes[8:]
