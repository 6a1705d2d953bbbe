"""A client written the way the 2012 ones were, against ``queuey serve`` over a socket.

The original Python clients (queuey-py, qdo) kept a base URL ending in ``/``
(``http://host/v1/app/``) and built every other URL with ``urljoin``; they
created queues with form bodies, posted a message as the raw request body with
``X-TTL`` and ``X-Partition``, read with ``since``/``limit``/``order``/
``partitions`` in the query string (``since=0.0`` for "from the start"), and
deleted messages by ``partition:id`` quoted into the path, so the colon went
out as ``%3A``. :class:`OriginalClient` does exactly that, with nothing but the
standard library, so no modern client smooths over what an old one sends.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin

from tests.conftest import KEYS, Server, write_config

Answer = tuple[int, dict[str, Any]]


class OriginalClient:
    """One application's connection, in the style of queuey-py's ``QueueyConnection``."""

    timeout = 10.0

    def __init__(self, server_url: str, app_key: str, app_name: str) -> None:
        self.server_url = server_url
        self.app_url = f"{server_url}/v1/{app_name}/"
        self.headers = {"Authorization": f"Application {app_key}"}

    def _send(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if params:
            url = f"{url}?{urlencode(params)}"
        request = urllib.request.Request(
            url, data=data, method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status: int = response.status
                body = response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        return status, json.loads(body) if body else {}

    def heartbeat(self) -> int:
        return self._send("HEAD", urljoin(self.server_url, "__heartbeat__"))[0]

    def create_queue(self, partitions: int = 1, queue_name: str | None = None) -> Answer:
        form: dict[str, Any] = {"partitions": partitions}
        if queue_name:
            form["queue_name"] = queue_name
        return self._send(
            "POST",
            self.app_url,
            data=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def queues(self) -> Answer:
        return self._send("GET", urljoin(self.app_url, ""))

    def post(self, queue: str, body: str, partition: int = 1, ttl: int | None = None) -> Answer:
        headers = {"X-Partition": str(partition), "Content-Type": "text/plain"}
        if ttl is not None:
            headers["X-TTL"] = str(ttl)
        return self._send("POST", urljoin(self.app_url, queue), data=body.encode(), headers=headers)

    def messages(
        self,
        queue: str,
        partition: int | str = 1,
        since: float | str | None = 0.0,
        limit: int = 100,
        order: str = "ascending",
    ) -> Answer:
        params = {"since": since, "limit": limit, "order": order, "partitions": partition}
        if since is None:
            del params["since"]
        return self._send("GET", urljoin(self.app_url, queue), params=params)

    def delete_messages(self, queue: str, ids: list[tuple[int, str]]) -> Answer:
        # quote() leaves "/" alone but not ":", so "1:abc" goes out as "1%3Aabc".
        path = ",".join(quote(f"{partition}:{key}") for partition, key in ids)
        return self._send("DELETE", urljoin(self.app_url, f"{queue}/{path}"))

    def delete_queue(self, queue: str) -> Answer:
        return self._send("DELETE", urljoin(self.app_url, queue))


def test_the_original_client_cycle_over_a_socket(tmp_path: Path, serve: type[Server]) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    server = serve(config).start()
    client = OriginalClient(server.url, KEYS["app1"][0], "app1")
    assert client.app_url.endswith("/v1/app1/")
    assert client.heartbeat() == 200

    # Create: a form body posted to the base URL itself, trailing slash included.
    status, created = client.create_queue(partitions=2, queue_name="orders")
    assert (status, created["queue_name"], created["partitions"]) == (201, "orders", 2)
    status, unnamed = client.create_queue()
    assert status == 201 and len(unnamed["queue_name"]) == 32

    # List: GET /v1/app1/ is the listing of /v1/app1.
    status, listing = client.queues()
    assert status == 200
    names = [q["queue_name"] for q in listing["queues"]]
    assert "orders" in names and unnamed["queue_name"] in names

    # Post: raw bodies, partition and TTL in headers.
    keys = []
    for body in ("first", "second", "third"):
        status, posted = client.post("orders", body, partition=1, ttl=3600)
        assert status == 201
        assert posted["messages"][0]["partition"] == 1
        keys.append(posted["messages"][0]["key"])
    status, other = client.post("orders", "elsewhere", partition=2)
    assert status == 201
    other_key = other["messages"][0]["key"]

    # Read from the start (since=0.0, as the original client sent by default).
    status, read = client.messages("orders")
    assert status == 200
    assert [(m["message_id"], m["body"]) for m in read["messages"]] == list(
        zip(keys, ("first", "second", "third"), strict=True)
    )
    first = read["messages"][0]
    assert isinstance(first["timestamp"], str)

    # Read on from a message: since is inclusive, by id and by timestamp alike.
    status, after = client.messages("orders", since=keys[1])
    assert [m["message_id"] for m in after["messages"]] == keys[1:]
    status, by_time = client.messages("orders", since=first["timestamp"])
    assert [m["message_id"] for m in by_time["messages"]] == keys
    # Descending scans back from since (at or before it): without one, from the newest.
    status, newest = client.messages("orders", since=None, limit=2, order="descending")
    assert [m["message_id"] for m in newest["messages"]] == [keys[2], keys[1]]
    status, both = client.messages("orders", partition="1,2")
    assert [m["partition"] for m in both["messages"]] == [1, 1, 1, 2]

    # Delete messages addressed as partition%3Aid.
    status, _ = client.delete_messages("orders", [(1, keys[0]), (2, other_key)])
    assert status == 200
    status, read = client.messages("orders", partition="1,2")
    assert [m["message_id"] for m in read["messages"]] == keys[1:]

    # Delete the queue; it is gone at once.
    assert client.delete_queue("orders")[0] == 200
    status, gone = client.messages("orders")
    assert status == 404
    assert gone["error_msg"] == {"InvalidQueueName": "Queue of that name was not found."}
    status, listing = client.queues()
    assert "orders" not in [q["queue_name"] for q in listing["queues"]]
