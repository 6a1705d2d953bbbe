"""The calls on queues themselves: list, create, change, look up, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from queuey.client.calls.base import Call, Paths, given, json_body, nothing, settings_of
from queuey.client.errors import InvalidQueueName


def queue_fields(
    partitions: int | None,
    type: str | None,
    consistency: str | None,
    principles: Sequence[str] | str | None,
) -> dict[str, Any]:
    """The settings of a queue as ``create_queue`` and ``update_queue`` take them."""
    return {
        "partitions": partitions,
        "type": type,
        "consistency": consistency,
        "principles": principles,
    }


def list_queues(
    paths: Paths, offset: str | None, limit: int, details: bool, count: bool
) -> Call[tuple[list[dict[str, Any]], str | None]]:
    params = {"limit": str(limit)}
    if offset is not None:
        params["offset"] = offset
    if details:
        params["details"] = "true"
    if count:
        params["include_count"] = "true"

    def parse(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        return list(answer.get("queues") or []), answer.get("next")

    return Call("GET", paths.app, parse, params=params)


def queue_settings(paths: Paths, name: str, count: bool) -> Call[dict[str, Any]]:
    """One queue's settings, from the listing (the owner's right); with ``count``, its size.

    A queue the listing does not have is :class:`InvalidQueueName`, as a read of it would be.
    """
    listing = list_queues(paths, name, 1, True, count)

    def parse(answer: dict[str, Any]) -> dict[str, Any]:
        items, _ = listing.parse(answer)
        if items and items[0].get("queue_name") == name:
            return items[0]
        message = "Queue of that name was not found."
        raise InvalidQueueName(f"InvalidQueueName: {message}", 404, {"InvalidQueueName": message})

    return Call(listing.method, listing.path, parse, params=listing.params)


def create_queue(paths: Paths, name: str, fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    content, headers = json_body({"queue_name": name, **given(fields)})
    # Creating a queue that exists changes nothing: a repeat is harmless.
    return Call("POST", paths.app, settings_of, headers=headers, content=content)


def update_queue(paths: Paths, name: str, fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    content, headers = json_body(given(fields))
    return Call("PUT", paths.queue(name), settings_of, headers=headers, content=content)


def delete_queue(paths: Paths, name: str) -> Call[None]:
    return Call("DELETE", paths.queue(name), nothing)
