"""The calls on consumer groups: their settings, claims, and the settling of leases."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from queuey.client.calls.base import (
    Call,
    Paths,
    Receipt,
    Since,
    given,
    json_body,
    nothing,
    receipts,
    settings_of,
    since_text,
)
from queuey.client.models import Delivery, Sent


def group_fields(
    guarantee: str | None,
    lease_seconds: int | None,
    max_deliveries: int | None,
    dead_letter_queue: str | None,
    ordered: bool | None,
    start: Since | None,
) -> dict[str, Any]:
    """The settings of a group as ``put_group`` takes them (``start`` only counts on creation)."""
    return {
        "guarantee": guarantee,
        "lease_seconds": lease_seconds,
        "max_deliveries": max_deliveries,
        "dead_letter_queue": dead_letter_queue,
        "ordered": ordered,
        "start": start if start in (None, "earliest", "latest") else since_text(start),
    }


def list_groups(paths: Paths, queue: str) -> Call[list[dict[str, Any]]]:
    def parse(answer: dict[str, Any]) -> list[dict[str, Any]]:
        return list(answer.get("groups") or [])

    return Call("GET", f"{paths.queue(queue)}/groups", parse)


def put_group(
    paths: Paths, queue: str, group: str, fields: Mapping[str, Any]
) -> Call[dict[str, Any]]:
    content, headers = json_body(given(fields))
    return Call("PUT", paths.group(queue, group), settings_of, headers=headers, content=content)


def get_group(paths: Paths, queue: str, group: str) -> Call[dict[str, Any]]:
    return Call("GET", paths.group(queue, group), settings_of)


def delete_group(paths: Paths, queue: str, group: str) -> Call[None]:
    return Call("DELETE", paths.group(queue, group), nothing)


def claim(
    paths: Paths,
    queue: str,
    group: str,
    limit: int | None,
    wait: float | None,
    partitions: Iterable[int] | None,
    consumer: str | None,
) -> Call[list[Delivery]]:
    fields: dict[str, Any] = {"limit": limit, "consumer": consumer}
    if wait:
        fields["wait"] = math.ceil(wait)
    if partitions is not None:
        fields["partitions"] = [int(p) for p in partitions]
    content, headers = json_body(given(fields))

    def parse(answer: dict[str, Any]) -> list[Delivery]:
        lease = int(answer.get("lease_seconds") or 30)
        return [Delivery.from_claim(item, lease) for item in answer.get("messages") or []]

    # A claim resent after it reached the server would lease messages nobody
    # holds until the lease ends (and lose them under at_most_once): sent once.
    return Call(
        "POST",
        f"{paths.group(queue, group)}/claim",
        parse,
        headers=headers,
        content=content,
        resend=False,
        wait=float(wait or 0),
    )


def _settle(
    paths: Paths,
    queue: str,
    group: str,
    action: str,
    done: str,
    fields: dict[str, Any],
    resend: bool,
) -> Call[list[str]]:
    content, headers = json_body(given(fields))

    def parse(answer: dict[str, Any]) -> list[str]:
        return list(answer.get(done) or [])

    return Call(
        "POST",
        f"{paths.group(queue, group)}/{action}",
        parse,
        headers=headers,
        content=content,
        resend=resend,
    )


def ack(paths: Paths, queue: str, group: str, leases: Iterable[Receipt]) -> Call[list[str]]:
    # An accepted receipt is accepted again (SPEC §6): a resent ack is answered as the first.
    fields = {"receipts": receipts(leases)}
    return _settle(paths, queue, group, "ack", "acknowledged", fields, resend=True)


def ack_and_publish(
    paths: Paths,
    queue: str,
    group: str,
    leases: Iterable[Receipt],
    messages: Sequence[Mapping[str, Any]],
) -> Call[list[Sent]]:
    content, headers = json_body(
        {"receipts": receipts(leases), "publish": [given(m) for m in messages]}
    )

    def parse(answer: dict[str, Any]) -> list[Sent]:
        return [Sent.from_json(item) for item in answer.get("published") or []]

    # An ack whose receipts were all accepted publishes nothing again.
    return Call("POST", f"{paths.group(queue, group)}/ack", parse, headers=headers, content=content)


def release(
    paths: Paths, queue: str, group: str, leases: Iterable[Receipt], delay: int | None
) -> Call[list[str]]:
    # A resent release finds the lease already ended and answers LeaseLost: sent once.
    fields = {"receipts": receipts(leases), "delay": delay}
    return _settle(paths, queue, group, "release", "released", fields, resend=False)


def extend(
    paths: Paths, queue: str, group: str, leases: Iterable[Receipt], seconds: int | None
) -> Call[list[str]]:
    fields = {"receipts": receipts(leases), "seconds": seconds}
    return _settle(paths, queue, group, "extend", "extended", fields, resend=True)


def seek(
    paths: Paths, queue: str, group: str, to: Since, partitions: Iterable[int] | None
) -> Call[dict[str, Any]]:
    fields: dict[str, Any] = {"to": to if to in ("earliest", "latest") else since_text(to)}
    if partitions is not None:
        fields["partitions"] = [int(p) for p in partitions]
    content, headers = json_body(fields)
    return Call(
        "POST", f"{paths.group(queue, group)}/seek", settings_of, headers=headers, content=content
    )
