"""A first round trip through the whole stack on every backend."""

from __future__ import annotations

import httpx

from tests.conftest import APP1, make_queue


async def test_post_then_read_back(client: httpx.AsyncClient) -> None:
    name = await make_queue(client)
    posted = await client.post(f"/v1/app1/{name}", content=b"hello", headers=APP1)
    assert posted.status_code == 201
    key = posted.json()["messages"][0]["key"]
    read = await client.get(f"/v1/app1/{name}", headers=APP1)
    assert read.status_code == 200
    assert [(m["message_id"], m["body"]) for m in read.json()["messages"]] == [(key, "hello")]
