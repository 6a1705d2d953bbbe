"""Consumer groups (SPEC §6): settings, claims, acknowledgements, receipts, state.

The HTTP layer has resolved the caller, the queue and the rights; each method
validates its raw fields, calls the store's group part
(``storage.groups.GroupStorage``) and returns dicts ready to be sent as JSON.

Receipts (``core.receipts``) are opaque to clients and unforgeable; one of
an earlier incarnation of this group is simply lost (409), as SPEC asks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping
from typing import Any, cast

from queuey.config import DEFAULTS
from queuey.core import receipts
from queuey.core import validation as v
from queuey.core.errors import (
    AccessDenied,
    InvalidGroupName,
    InvalidUpdate,
    LeaseLost,
)
from queuey.core.ids import format_id, format_timestamp, is_hex_id, parse_id, parse_timestamp
from queuey.core.messages import (
    MAX_POST_MESSAGES,
    Messages,
    message_info,
    parse_item,
    posted_info,
)
from queuey.core.queues import Queues, raise_if
from queuey.storage.base import NewMessage, Queue, Storage
from queuey.storage.groups import (
    DEFAULT_GUARANTEE,
    GUARANTEES,
    Action,
    Delivery,
    Group,
    GroupSettings,
    GroupStorage,
    Position,
)
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey

MAX_LEASE = 43200
MAX_DELIVERIES = 1000
MAX_CLAIM = 1000
MAX_WAIT = 60
MAX_CONSUMER = 100
#: Seconds between two tries of a waiting claim that hears no news (leases ending, delays passing).
RECHECK_SECONDS = 1.0


def group_info(group: Group) -> dict[str, Any]:
    s = group.settings
    return {
        "group": group.name,
        "guarantee": s.guarantee,
        "lease_seconds": s.lease_seconds,
        "max_deliveries": s.max_deliveries,
        "dead_letter_queue": s.dead_letter_queue,
        "ordered": s.ordered,
        "created": group.created,
    }


def _position(value: Any, key: str, errors: v.Errors) -> Position:
    """``earliest``, ``latest``, a message id or a timestamp."""
    if value in ("earliest", "latest"):
        return cast(Position, value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        if is_hex_id(value):
            return parse_id(value)
        ticks = parse_timestamp(value)
        if ticks is not None:
            return MessageKey(ticks, b"")
    errors[key] = f'"{v.clipped(str(value))}" is not earliest, latest, a message id or a timestamp'
    return "earliest"


def _partitions(value: Any, errors: v.Errors, queue: Queue) -> list[int]:
    """A list or comma-separated string of partitions; default all; outside the queue ignored."""
    if not v.given(value):
        return list(range(1, queue.partitions + 1))
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        errors["partitions"] = "must be a list of partitions or a comma-separated string"
        return []
    found: dict[int, None] = {}
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        number = v.parse_integer(item)
        if number is None:
            errors["partitions"] = f'"{v.clipped(str(item))}" is not a number'
        elif 1 <= number <= queue.partitions:
            found[number] = None
    return list(found)


def _cursor(key: MessageKey | None) -> str | None:
    if key is None:
        return None
    return format_id(key) if key.tail else format_timestamp(key.ts)


class Groups:
    """The consumer groups of every queue, over one store."""

    def __init__(
        self,
        storage: Storage,
        queues: Queues,
        messages: Messages,
        max_in_flight: int = DEFAULTS["max_in_flight"],
    ) -> None:
        self.store = cast(GroupStorage, storage)
        self.queues = queues
        self.messages = messages
        self.max_in_flight = max_in_flight
        #: When a waiting claim of (group handle, *partitions) last found nothing.
        self._rechecked: dict[tuple[object, ...], float] = {}

    # -- groups ------------------------------------------------------------------

    async def find(self, queue: Queue, name: str) -> Group:
        if v.QUEUE_NAME.fullmatch(name) is None:
            raise InvalidGroupName()
        group = await self.store.get_group(queue, name)
        if group is None:
            raise InvalidGroupName()
        return group

    async def _settings(
        self, queue: Queue, body: Mapping[str, Any], base: GroupSettings, errors: v.Errors
    ) -> GroupSettings:
        guarantee = v.choice(body.get("guarantee"), "guarantee", errors, base.guarantee, GUARANTEES)
        lease = v.integer(
            body.get("lease_seconds"), "lease_seconds", errors, base.lease_seconds, 1, MAX_LEASE
        )
        most = v.integer(
            body.get("max_deliveries"), "max_deliveries", errors, base.max_deliveries, 0,
            MAX_DELIVERIES,
        )  # fmt: skip
        ordered = v.boolean(body.get("ordered"), "ordered", errors, base.ordered)
        dead = base.dead_letter_queue
        given = body.get("dead_letter_queue")
        if given == "":
            dead = None
        elif given is not None:
            if not isinstance(given, str) or v.QUEUE_NAME.fullmatch(given) is None:
                errors["dead_letter_queue"] = f'"{v.clipped(str(given))}" is not a queue name'
            elif given == queue.name:
                errors["dead_letter_queue"] = "must be another queue than the group's own"
            elif await self.queues.storage.get_queue(queue.app, given) is None:
                errors["dead_letter_queue"] = f'"{given}" is not a queue of this application'
            else:
                dead = given
        return GroupSettings(guarantee, lease, most, dead, ordered)

    async def put(
        self, queue: Queue, name: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Create (True) or update (False) a group."""
        errors: v.Errors = {}
        if v.QUEUE_NAME.fullmatch(name) is None:
            errors["group"] = (
                f'"{v.clipped(name)}" is not a group name'
                ' (1 to 50 of A-Z a-z 0-9 _ . @ : + = ~ -, not "." or "..")'
            )
        existing = None if errors else await self.store.get_group(queue, name)
        if existing is not None:
            settings = await self._settings(queue, body, existing.settings, errors)
            raise_if(errors)
            if v.given(body.get("start")):
                raise InvalidUpdate("A group's start is set on creation; use seek to move it.")
            updated = await self.store.update_group(existing, settings)
            return {"status": "ok", **group_info(updated)}, False
        base = GroupSettings(guarantee=DEFAULT_GUARANTEE[queue.settings.consistency])
        settings = await self._settings(queue, body, base, errors)
        start: Position = "earliest"
        if v.given(body.get("start")):
            start = _position(body.get("start"), "start", errors)
        raise_if(errors)
        group, created = await self.store.create_group(queue, name, settings, start)
        return {"status": "ok", **group_info(group)}, created

    async def every(self, queue: Queue) -> dict[str, Any]:
        groups = await self.store.list_groups(queue)
        return {"status": "ok", "groups": [group_info(g) for g in groups]}

    async def delete(self, group: Group) -> None:
        await self.store.delete_group(group)

    async def state(self, group: Group) -> dict[str, Any]:
        report = await self.store.report(group)
        now = time.time_ns() // 100 + UNIX_EPOCH_TICKS
        partitions = [
            {
                "partition": p.partition,
                "cursor": _cursor(p.cursor),
                "in_flight": 0 if group.settings.guarantee == "at_most_once" else p.in_flight,
                "pending": p.pending,
                "oldest_pending_age": (
                    None
                    if p.oldest_pending is None
                    else round(max(0, now - p.oldest_pending.ts) / 10_000_000, 3)
                ),
                "consumers": p.consumers,
            }
            for p in report.partitions
        ]
        counters = {
            name: getattr(report.counters, name) for name in report.counters.__struct_fields__
        }
        return {"status": "ok", **group_info(group), "partitions": partitions, **counters}

    # -- delivery ----------------------------------------------------------------

    async def claim(self, group: Group, body: Mapping[str, Any]) -> dict[str, Any]:
        errors: v.Errors = {}
        limit = v.integer(body.get("limit"), "limit", errors, 10, 1, MAX_CLAIM)
        wait = v.integer(body.get("wait"), "wait", errors, 0, 0, MAX_WAIT)
        partitions = _partitions(body.get("partitions"), errors, group.queue)
        consumer = body.get("consumer")
        if v.given(consumer) and (not isinstance(consumer, str) or len(consumer) > MAX_CONSUMER):
            errors["consumer"] = f"must be a string of 1 to {MAX_CONSUMER} characters"
        raise_if(errors)
        name = consumer if isinstance(consumer, str) and consumer else None
        found = await self.store.claim(group, partitions, limit, name, self.max_in_flight)
        if not found and wait:
            found = await self._wait_and_claim(group, partitions, limit, name, wait)
        texts = receipts.encode_all(
            await self.store.receipt_secret(), group, [d.receipt for d in found]
        )
        messages = [
            {**message_info(d.message), "receipt": text, "deliveries": d.deliveries}
            for d, text in zip(found, texts, strict=True)
        ]
        return {"status": "ok", "lease_seconds": group.settings.lease_seconds, "messages": messages}

    async def _wait_and_claim(
        self, group: Group, partitions: list[int], limit: int, name: str | None, wait: int
    ) -> list[Delivery]:
        """Claim again on each news of the queue (``core.waiters``) until ``wait`` ends.

        Posts and releases through any process or web node are news. Leases
        that end and release delays that pass are not (nothing is written),
        so a waiting claim also tries again every ``RECHECK_SECONDS``; one
        waiter of a group and partitions tries for all of this process.
        """
        deadline = time.monotonic() + wait
        line = (group.handle, *partitions)
        found: list[Delivery] = []
        async with self.messages.waiters.watch(group.queue, "claim") as watch:
            news = True  # the watch began after the first try: try once more inside it
            while True:
                again = time.monotonic() - self._rechecked.get(line, 0.0) >= RECHECK_SECONDS
                if news or again or watch.gone:  # gone: the claim answers 404
                    found = await self.store.claim(
                        group, partitions, limit, name, self.max_in_flight
                    )
                    if found or watch.gone:
                        return found
                    self._rechecked[line] = time.monotonic()
                    if len(self._rechecked) > 10_000:
                        self._rechecked.clear()
                left = deadline - time.monotonic()
                # Closed waiters: the server is stopping; answer with what there is.
                if left <= 0 or watch.closed:
                    return found
                news = await watch.wait(min(RECHECK_SECONDS, left))

    async def _publish(
        self, group: Group, value: Any, texts: list[str], errors: v.Errors
    ) -> list[tuple[Queue, NewMessage]]:
        """``publish`` items of an acknowledgement, each for a queue of the group's application.

        An item without an idempotency key gets one derived from the receipts
        (and its place), so that a retried acknowledgement publishes nothing again.
        """
        if not isinstance(value, list):
            errors["publish"] = "must be a list of messages"
            return []
        if len(value) > MAX_POST_MESSAGES:
            errors["publish"] = f"{len(value)} is greater than maximum value {MAX_POST_MESSAGES}"
            return []
        for i, item in enumerate(value):
            if isinstance(item, dict) and isinstance(item.get("body"), str):
                self.messages.check_size(item["body"], f"Message publish.{i}")
        seed = hashlib.sha256("\n".join([group.handle, *texts]).encode()).hexdigest()[:40]
        targets: dict[str, Queue | None] = {}
        found: list[tuple[Queue, NewMessage]] = []
        for i, item in enumerate(value):
            name = item.get("queue") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                errors[f"publish.{i}.queue"] = "Required"
                continue
            if name not in targets:
                known = v.QUEUE_NAME.fullmatch(name) is not None
                targets[name] = (
                    await self.queues.storage.get_queue(group.queue.app, name) if known else None
                )
            target = targets[name]
            if target is None:
                errors[f"publish.{i}.queue"] = (
                    f'"{v.clipped(name)}" is not a queue of this application'
                )
                continue
            message = parse_item(item, f"publish.{i}.", errors, target)
            if message is not None:
                key = message.idempotency_key or f"ack:{seed}:{i}"
                found.append((target, dataclasses.replace(message, idempotency_key=key)))
        return found

    async def settle(
        self,
        group: Group,
        action: Action,
        body: Mapping[str, Any],
        may_publish: bool = False,
        partitions: frozenset[int] | None = None,
    ) -> dict[str, Any]:
        """Acknowledge, release or extend; 409 LeaseLost with both lists when any was lost.

        An acknowledgement with ``publish`` needs ``may_publish`` (the caller is
        the group's application, else 403) and is all or nothing. ``partitions``:
        those the caller may settle in (a scoped token's), None for all; a
        receipt of another partition is 403.
        """
        publishing = action == "ack" and body.get("publish") is not None
        if publishing and not may_publish:
            raise AccessDenied()
        errors: v.Errors = {}
        seconds = 0
        if action == "release":
            seconds = v.integer(body.get("delay"), "delay", errors, 0, 0, MAX_LEASE)
        elif action == "extend":
            seconds = v.integer(
                body.get("seconds"), "seconds", errors, group.settings.lease_seconds, 1, MAX_LEASE
            )
        raise_if(errors)
        texts, parsed = receipts.parse(
            await self.store.receipt_secret(), group, body.get("receipts")
        )
        if partitions is not None and any(
            r is not None and r.partition not in partitions for r in parsed
        ):
            raise AccessDenied()
        publish = await self._publish(group, body["publish"], texts, errors) if publishing else []
        raise_if(errors)
        current = [r for r in parsed if r is not None]
        if publishing and len(current) < len(parsed):
            raise LeaseLost(
                {
                    "acknowledged": [],
                    "lost": [t for t, r in zip(texts, parsed, strict=True) if r is None],
                }
            )
        settled = await self.store.settle(group, action, current, seconds, publish)
        if action == "release" and settled.accepted:
            self.messages.waiters.notify(group.queue.handle)
        for target in {q.handle for q, _ in publish}:
            self.messages.waiters.notify(target)
        accepted = set(settled.accepted)
        done = [t for t, r in zip(texts, parsed, strict=True) if r is not None and r in accepted]
        missed = set(settled.lost)
        lost = [t for t, r in zip(texts, parsed, strict=True) if r is None or r in missed]
        word = {"ack": "acknowledged", "release": "released", "extend": "extended"}[action]
        if lost:
            raise LeaseLost({word: done, "lost": lost})
        answer: dict[str, Any] = {"status": "ok", word: done}
        if publishing:
            answer["published"] = [posted_info(p) for p in settled.published]
        if action == "extend":
            answer["lease_seconds"] = seconds
        return answer

    async def seek(self, group: Group, body: Mapping[str, Any]) -> dict[str, Any]:
        errors: v.Errors = {}
        to = _position(body.get("to"), "to", errors) if v.given(body.get("to")) else None
        if to is None and "to" not in errors:
            errors["to"] = "Required"
        partitions = _partitions(body.get("partitions"), errors, group.queue)
        raise_if(errors)
        assert to is not None
        await self.store.seek(group, partitions, to)
        return await self.state(group)
