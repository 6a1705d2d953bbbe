"""After the faults: settle unknown outcomes, empty every group, read back the queue.

1. Acknowledgements that never got an answer are sent again, receipt by
   receipt, until the server answers: a retried acknowledgement of an
   accepted receipt is accepted again, one that was not is judged now, so
   every receipt ends with a definite verdict.
2. Each group is drained by a well-behaved consumer that claims with a wait
   longer than a lease (so leases of crashed consumers end meanwhile) and
   acknowledges at once, until a few claims in a row bring nothing.
3. The queue is read by range read, every partition, page by page.
4. Each group's state is read (pending and in-flight must be 0).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from chaos.api import Api, NoAnswer, Reply
from chaos.consumers import Consumer, GroupSpec, body_key
from chaos.history import History, Stored
from chaos.producers import PARTITIONS, Control

#: Claims in a row that must come back empty before a group counts as drained.
EMPTY_CLAIMS = 3
PAGE = 1000


def unknown_receipts(history: History, group: str) -> list[str]:
    """Receipts of ``group`` sent in acknowledgements, none of which got a verdict for them."""
    judged: set[str] = set()
    sent: dict[str, None] = {}
    for ack in history.acks:
        if ack.group == group:
            judged.update(ack.accepted, ack.lost)
            sent.update(dict.fromkeys(ack.receipts))
    return [r for r in sent if r not in judged]


async def settle_unknown(api: Api, history: History, groups: list[GroupSpec]) -> None:
    control = Control(retry_until=history.now() + 120)
    for group in groups:
        consumer = Consumer(f"settle-{group.name}", group, api, history, random.Random(0), control)
        for receipt in unknown_receipts(history, group.name):
            await consumer.ack([receipt], tries=30)


async def drain(api: Api, history: History, groups: list[GroupSpec], seconds: float) -> list[str]:
    """Drain every group at once; return the names of those not drained in ``seconds``."""
    until = history.now() + seconds
    control = Control(retry_until=until)
    drainers = [
        Consumer(f"drain-{g.name}", g, api, history, random.Random(0), control) for g in groups
    ]
    done = await asyncio.gather(*(d.drain(EMPTY_CLAIMS, until) for d in drainers))
    return [g.name for g, ok in zip(groups, done, strict=True) if not ok]


async def _get(api: Api, path: str, params: dict[str, str] | None = None) -> Reply:
    """A read, retried while the server does not answer."""
    for attempt in range(60):
        try:
            reply = await api.request("GET", path, params=params)
        except NoAnswer:
            await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
            continue
        if reply.status != 503:
            return reply
        await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
    raise RuntimeError(f"GET {path} never answered")


async def read_queue(api: Api) -> list[Stored]:
    """Every message of the queue, by range read (SPEC §3), partition by partition."""
    stored: list[Stored] = []
    for partition in range(1, PARTITIONS + 1):
        since = ""
        while True:
            params = {"partitions": str(partition), "limit": str(PAGE), "since": since}
            reply = await _get(api, api.queue_path, params)
            if reply.status != 200:
                raise RuntimeError(f"range read answered {reply.status}: {reply.body}")
            page: list[dict[str, Any]] = reply.body["messages"]
            fresh = [m for m in page if m["message_id"] != since]
            stored.extend(
                Stored(m["message_id"], int(m["partition"]), _key(m["body"])) for m in fresh
            )
            if len(page) < PAGE:
                break
            since = page[-1]["message_id"]
    return stored


def _key(body: object) -> str | None:
    key = body_key(body)
    return None if key == "?" else key


async def group_states(api: Api, groups: list[GroupSpec]) -> dict[str, dict[str, Any]]:
    states = {}
    for group in groups:
        reply = await _get(api, api.group_path(group.name))
        if reply.status != 200:
            raise RuntimeError(f"group {group.name} answered {reply.status}: {reply.body}")
        states[group.name] = reply.body
    return states
