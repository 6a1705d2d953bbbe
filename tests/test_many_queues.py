"""One application with thousands of queues: create, find, page through them, on every backend."""

from __future__ import annotations

import asyncio
import random

import httpx

from tests.conftest import APP1

COUNT = 2000


async def test_thousands_of_queues_list_in_order_and_page_exactly_once(
    client: httpx.AsyncClient,
) -> None:
    alphabet = "ABCXYZabcxyz0189_.-"
    names = sorted(
        {"".join(random.choices(alphabet, k=random.randint(1, 12))) for _ in range(COUNT)}
        - {".", ".."}
    )

    async def create(name: str) -> None:
        response = await client.post("/v1/app1", json={"queue_name": name}, headers=APP1)
        assert response.status_code == 201, response.text

    for start in range(0, len(names), 100):
        await asyncio.gather(*(create(n) for n in names[start : start + 100]))

    # Each one can be found.
    for name in random.sample(names, 50):
        response = await client.get(f"/v1/app1/{name}", headers=APP1)
        assert response.status_code == 200, (name, response.text)

    # Paging with `next` visits each queue exactly once, in binary name order.
    seen: list[str] = []
    offset = ""
    while True:
        page = await client.get("/v1/app1", params={"limit": 333, "offset": offset}, headers=APP1)
        body = page.json()
        seen += [q["queue_name"] for q in body["queues"]]
        if body["next"] is None:
            break
        offset = body["next"]
    assert seen == sorted(names, key=lambda n: n.encode())

    # An offset that is no queue's name starts at the next one.
    middle = names[len(names) // 2]
    after = await client.get(
        "/v1/app1", params={"limit": 3, "offset": middle + "\x00"}, headers=APP1
    )
    index = names.index(middle)
    assert [q["queue_name"] for q in after.json()["queues"]] == names[index + 1 : index + 4]
