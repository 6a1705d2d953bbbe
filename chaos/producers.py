"""Producers: every message carries an idempotency key; errors are retried; some re-sent on purpose.

Each message's body is ``{"key": K, "try": N, "by": PRODUCER}``, so the final
range read tells which key every stored message was posted with. A post
without an answer (connection refused or broken: the server was killed) or
with a 503 is sent again with the same keys until a 201 comes; a retry may
carry another body and partition, which the server must ignore (SPEC §3:
answered as the first time, whatever its body). Some posts re-send keys
already answered 201, alone or in a batch with new keys, and some batches
carry a key twice.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

from chaos.api import Api, NoAnswer
from chaos.history import Answer, History, Post

PARTITIONS = 3


@dataclass
class Control:
    """What every actor watches: ``stop`` taking new work; stop retrying at ``retry_until``."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    retry_until: float = float("inf")


class Producer:
    def __init__(self, name: str, api: Api, history: History, rng: random.Random, control: Control):
        self.name = name
        self.api = api
        self.history = history
        self.rng = rng
        self.control = control
        self.count = 0
        self.answered: list[str] = []
        self._answered: set[str] = set()
        self.unresolved: list[str] = []

    def _new_key(self) -> str:
        self.count += 1
        return f"{self.name}-{self.count:05d}"

    async def run(self) -> None:
        rng = self.rng
        while not self.control.stop.is_set():
            roll = rng.random()
            on_purpose = False
            if roll < 0.45:
                keys = [self._new_key()]
            elif roll < 0.8:
                keys = [self._new_key() for _ in range(rng.randint(2, 5))]
                if rng.random() < 0.15:  # the same key twice in one batch: one message
                    keys.insert(rng.randrange(1, len(keys) + 1), keys[0])
            elif self.answered:
                on_purpose = True
                keys = rng.sample(self.answered, min(len(self.answered), rng.randint(1, 3)))
                if rng.random() < 0.5:
                    keys += [self._new_key() for _ in range(rng.randint(1, 2))]
                    rng.shuffle(keys)
            else:
                continue
            single = len(keys) == 1 and rng.random() < 0.7
            await self.publish(keys, single, on_purpose)
            await asyncio.sleep(rng.uniform(0.02, 0.2))

    async def publish(self, keys: list[str], single: bool, on_purpose: bool) -> None:
        """Post until a 201 (or an answer that retrying cannot change, or the retry deadline)."""
        attempt = 0
        while True:
            attempt += 1
            post = await self._send(keys, single, attempt, on_purpose)
            if post.status == 201:
                for key in dict.fromkeys(keys):
                    if key not in self._answered:
                        self._answered.add(key)
                        self.answered.append(key)
                return
            if post.status not in (None, 503):
                return  # recorded; the checker reports it
            if self.history.now() > self.control.retry_until:
                self.unresolved.extend(keys)
                return
            await asyncio.sleep(min(1.0, 0.05 * attempt) * self.rng.uniform(0.5, 1.5))

    def _body(self, key: str, attempt: int) -> str:
        return json.dumps({"key": key, "try": attempt, "by": self.name}, separators=(",", ":"))

    async def _send(self, keys: list[str], single: bool, attempt: int, on_purpose: bool) -> Post:
        rng = self.rng
        post = Post(self.name, self.history.now(), list(keys), on_purpose)
        self.history.posts.append(post)
        try:
            if single:
                headers = {"X-Idempotency-Key": keys[0]}
                if rng.random() < 0.5:
                    headers["X-Partition"] = str(rng.randint(1, PARTITIONS))
                reply = await self.api.request(
                    "POST",
                    self.api.queue_path,
                    content=self._body(keys[0], attempt),
                    headers=headers,
                )
            else:
                items: list[dict[str, object]] = []
                for key in keys:
                    item: dict[str, object] = {
                        "body": self._body(key, attempt),
                        "idempotency_key": key,
                    }
                    if rng.random() < 0.5:
                        item["partition"] = rng.randint(1, PARTITIONS)
                    items.append(item)
                reply = await self.api.request(
                    "POST", self.api.queue_path, json={"messages": items}
                )
        except NoAnswer as exc:
            post.done, post.error = self.history.now(), str(exc)
            return post
        post.done, post.status = self.history.now(), reply.status
        if reply.status == 201:
            try:
                post.answers = [
                    Answer(m["key"], m["timestamp"], int(m["partition"]))
                    for m in reply.body["messages"]
                ]
            except (KeyError, TypeError, ValueError):
                post.error = f"malformed 201: {reply.body}"
        else:
            post.error = json.dumps(reply.body)[:300]
        return post
