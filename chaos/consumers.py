"""Consumers of a group, misbehaving on purpose, and the well-behaved drainer.

After each claim a consumer picks what to do with the batch:

- ``ack``: acknowledge all receipts in one request; ``ack-each``: one request each;
- ``slow``: wait up to 40 % of the lease, then acknowledge all;
- ``crash``: drop the receipts unacknowledged, drop its connections, start again;
- ``crash-mid``: acknowledge some receipts one by one, then crash with the rest;
- ``stall``: sleep past the lease, then acknowledge all (exactly_once must refuse them all).

Now and then it also acknowledges again a receipt it acknowledged before (a
retry must be answered as the first time). An acknowledgement without an
answer, or answered 503, is retried with the same receipts a few times;
those whose outcome is still unknown when the faults stop are settled by
the drain (:mod:`chaos.drain`).
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

from chaos.api import Api, NoAnswer
from chaos.history import Ack, Claim, History, Lease
from chaos.producers import Control

BEHAVIOURS = ("ack", "ack-each", "slow", "crash", "crash-mid", "stall")
WEIGHTS = (45, 10, 10, 12, 12, 11)
ACK_TRIES = 4


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    guarantee: str
    lease_seconds: int


def body_key(body: object) -> str:
    """The idempotency key a message body of this run carries; ``?`` for a foreign body."""
    try:
        key = json.loads(str(body))["key"]
    except (ValueError, TypeError, KeyError):
        return "?"
    return key if isinstance(key, str) else "?"


class Consumer:
    def __init__(
        self,
        name: str,
        group: GroupSpec,
        api: Api,
        history: History,
        rng: random.Random,
        control: Control,
    ) -> None:
        self.name = name
        self.group = group
        self.api = api
        self.history = history
        self.rng = rng
        self.control = control
        self.acknowledged: list[str] = []

    async def run(self) -> None:
        rng = self.rng
        lease = self.group.lease_seconds
        while not self.control.stop.is_set():
            claim = await self.claim(rng.randint(1, 16), wait=1)
            if claim.status != 200:
                await asyncio.sleep(rng.uniform(0.1, 0.3))
                continue
            receipts = [lease_.receipt for lease_ in claim.leases]
            if not receipts:
                continue
            behaviour = rng.choices(BEHAVIOURS, WEIGHTS)[0]
            if behaviour == "ack":
                await self.ack(receipts)
            elif behaviour == "ack-each":
                for receipt in receipts:
                    await self.ack([receipt])
            elif behaviour == "slow":
                await asyncio.sleep(rng.uniform(0, 0.4 * lease))
                await self.ack(receipts)
            elif behaviour == "crash":
                await self.crash()
            elif behaviour == "crash-mid":
                for receipt in receipts[: rng.randrange(len(receipts))]:
                    await self.ack([receipt])
                await self.crash()
            else:  # stall
                await asyncio.sleep(lease + rng.uniform(0.2, 1.5))
                await self.ack(receipts)
            if self.acknowledged and rng.random() < 0.05:
                await self.ack([rng.choice(self.acknowledged)])

    async def crash(self) -> None:
        await self.api.reset()
        await asyncio.sleep(self.rng.uniform(0.05, 0.5))

    async def claim(self, limit: int, wait: int) -> Claim:
        claim = Claim(self.name, self.group.name, self.history.now())
        self.history.claims.append(claim)
        body = {"limit": limit, "wait": wait, "consumer": self.name}
        try:
            reply = await self.api.request(
                "POST", self.api.group_path(self.group.name, "claim"), json=body, timeout=wait + 30
            )
        except NoAnswer as exc:
            claim.done, claim.error = self.history.now(), str(exc)
            return claim
        claim.done, claim.status = self.history.now(), reply.status
        if reply.status != 200:
            claim.error = json.dumps(reply.body)[:300]
            return claim
        try:
            claim.leases = [
                Lease(
                    m["message_id"],
                    int(m["partition"]),
                    m["receipt"],
                    int(m["deliveries"]),
                    body_key(m["body"]),
                )
                for m in reply.body["messages"]
            ]
        except (KeyError, TypeError, ValueError):
            claim.error = f"malformed 200: {json.dumps(reply.body)[:300]}"
        return claim

    async def ack(self, receipts: list[str], tries: int = ACK_TRIES) -> Ack | None:
        """Acknowledge; retried while no answer comes (or a 503). The last attempt is returned."""
        last: Ack | None = None
        for attempt in range(1, tries + 1):
            last = ack = Ack(self.name, self.group.name, self.history.now(), list(receipts))
            self.history.acks.append(ack)
            try:
                reply = await self.api.request(
                    "POST", self.api.group_path(self.group.name, "ack"), json={"receipts": receipts}
                )
            except NoAnswer as exc:
                ack.done, ack.error = self.history.now(), str(exc)
            else:
                ack.done, ack.status = self.history.now(), reply.status
                if reply.status in (200, 409):
                    accepted = reply.body.get("acknowledged")
                    lost = reply.body.get("lost", [])
                    if isinstance(accepted, list) and isinstance(lost, list):
                        ack.accepted, ack.lost = accepted, lost
                        self.acknowledged.extend(accepted)
                    else:
                        ack.error = f"malformed {reply.status}: {json.dumps(reply.body)[:300]}"
                    return ack
                ack.error = json.dumps(reply.body)[:300]
                if reply.status != 503:
                    return ack
            if self.history.now() > self.control.retry_until:
                break
            await asyncio.sleep(min(1.0, 0.1 * attempt) * self.rng.uniform(0.5, 1.5))
        return last

    async def drain(self, empties: int, until: float) -> bool:
        """Claim and acknowledge everything until ``empties`` claims in a row bring nothing.

        Each claim waits past a lease, so messages of crashed consumers come back
        meanwhile. Returns False if ``until`` passed first.
        """
        wait = self.group.lease_seconds + 1
        quiet = 0
        while quiet < empties:
            if self.history.now() > until:
                return False
            claim = await self.claim(100, wait)
            if claim.status != 200:
                await asyncio.sleep(0.2)
                continue
            if not claim.leases:
                quiet += 1
                continue
            quiet = 0
            await self.ack([lease.receipt for lease in claim.leases], tries=20)
        return True
