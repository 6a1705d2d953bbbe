"""The history of a run: every request, its answer (or that none came), every fault.

Then what the final reads found (the stored messages, each group's state).

Times are seconds since the run began (``time.monotonic``), taken when a
request is sent and when its answer (or its failure) arrives: the checker only
draws conclusions that hold whatever the server did in between. ``status`` is
``None`` when no answer came (connection refused or reset, timeout): the
outcome is unknown.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    """Where a 201 says a message is: what every answer for its idempotency key must repeat."""

    message_id: str
    timestamp: str
    partition: int


@dataclass(slots=True)
class Post:
    """One POST of one message (header key) or a batch (a key per item)."""

    actor: str
    sent: float
    keys: list[str]
    on_purpose: bool = False  # a re-send of keys already answered 201
    done: float | None = None
    status: int | None = None
    answers: list[Answer] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Lease:
    """One message handed out by one claim."""

    message_id: str
    partition: int
    receipt: str
    deliveries: int
    key: str  # the idempotency key its body carries


@dataclass(slots=True)
class Claim:
    actor: str
    group: str
    sent: float
    done: float | None = None
    status: int | None = None
    leases: list[Lease] = field(default_factory=list)
    error: str = ""


@dataclass(slots=True)
class Ack:
    """One POST …/ack; ``accepted`` and ``lost`` as the answer listed them."""

    actor: str
    group: str
    sent: float
    receipts: list[str]
    done: float | None = None
    status: int | None = None
    accepted: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    what: str


@dataclass(frozen=True, slots=True)
class Stored:
    """A message the final range read found."""

    message_id: str
    partition: int
    key: str | None  # None: a body this run never posted


class History:
    """Everything a run did, in memory, in the order it happened."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.posts: list[Post] = []
        self.claims: list[Claim] = []
        self.acks: list[Ack] = []
        self.faults: list[Fault] = []
        #: What the run found at its end: the range read, and each group's state (GET).
        self.stored: list[Stored] = []
        self.states: dict[str, dict[str, Any]] = {}

    def now(self) -> float:
        return round(time.monotonic() - self.began, 4)

    def fault(self, what: str) -> None:
        self.faults.append(Fault(self.now(), what))
        print(f"  {self.now():8.3f}s  {what}", flush=True)


def dump(history: History, path: Path) -> None:
    """Every event as one JSON object per line, in the order sent (faults by their time)."""
    events: list[tuple[float, dict[str, object]]] = []
    for kind, items in (
        ("post", history.posts),
        ("claim", history.claims),
        ("ack", history.acks),
    ):
        events.extend((e.sent, {"event": kind, **asdict(e)}) for e in items)
    events.extend((f.at, {"event": "fault", **asdict(f)}) for f in history.faults)
    events.sort(key=lambda e: e[0])
    # Last, what the final reads found: every stored message, then each group's state.
    events.extend((0.0, {"event": "stored", **asdict(s)}) for s in history.stored)
    events.extend(
        (0.0, {"event": "state", "group": name, "state": state})
        for name, state in history.states.items()
    )
    with path.open("w", encoding="utf-8") as out:
        for _, event in events:
            out.write(json.dumps(event) + "\n")
