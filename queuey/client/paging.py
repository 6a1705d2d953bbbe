"""Where ``iter`` stands in each partition, and what it asks next.

``since`` is inclusive (SPEC §3), so a partition is paged by passing the last
id it gave and dropping that id when it comes back first. Partitions are read
in turn, one page each, until every one comes back short ("caught up"). A
follower then makes one *wake-up* read over all of them, from just after the
newest message seen, with ``wait``: a server that holds reads answers it as
soon as anything new is readable; one that does not answers at once, and the
follower sleeps ``poll`` seconds. Either way it then reads each partition
again: the wake-up read only says when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from queuey.client import calls
from queuey.client.calls import Call, Paths, Since
from queuey.client.models import Message

#: The most messages one read returns per partition (SPEC §3).
MAX_PAGE = 1000
TICKS = 10_000_000  # 100-ns ticks per second


def next_tick(timestamp: str) -> str:
    """The timestamp one tick (100 ns) after ``timestamp`` (``"S.FFFFFFF"``), exactly."""
    seconds, _, fraction = timestamp.partition(".")
    ticks = int(seconds) * TICKS + int((fraction + "0000000")[:7]) + 1
    return f"{ticks // TICKS}.{ticks % TICKS:07d}"


@dataclass(slots=True)
class Cursor:
    """One partition's place: the next read starts at ``since``, dropping ``skip``."""

    partition: int
    since: str | None
    skip: str | None = None
    caught_up: bool = False


class Pager:
    """The reads of one ``iter``, and what each answer adds."""

    def __init__(
        self,
        paths: Paths,
        queue: str,
        partitions: Sequence[int],
        since: Since | None,
        page_size: int,
        wait: float,
        poll: float,
    ) -> None:
        if not 1 <= page_size < MAX_PAGE:
            raise ValueError(f"page_size: {page_size} is not in 1..{MAX_PAGE - 1}")
        if not partitions:
            raise ValueError("partitions: none given")
        start = None if since is None else calls.since_text(since)
        self.paths = paths
        self.queue = queue
        self.cursors = [Cursor(int(p), start) for p in dict.fromkeys(partitions)]
        self.page_size = page_size
        self.wait = wait
        self.poll = poll
        #: Where a wake-up read starts: just after the newest message seen.
        self.horizon = start
        self._newest = ""

    def behind(self) -> list[Cursor]:
        """The partitions that may have more to read now."""
        return [c for c in self.cursors if not c.caught_up]

    def page(self, cursor: Cursor) -> Call[list[Message]]:
        """The read of the next page of one partition."""
        limit = self.page_size + (cursor.skip is not None)
        return calls.read(
            self.paths, self.queue, cursor.since, limit, "ascending", [cursor.partition], None
        )

    def took(self, cursor: Cursor, messages: list[Message]) -> list[Message]:
        """The messages of a page not given before; move the cursor past them."""
        limit = self.page_size + (cursor.skip is not None)
        fresh = [m for m in messages if m.message_id != cursor.skip]
        cursor.caught_up = len(messages) < limit or not fresh
        if fresh:
            cursor.since = cursor.skip = fresh[-1].message_id
            newest = max(fresh, key=lambda m: (len(m.timestamp), m.timestamp)).timestamp
            if (len(newest), newest) > (len(self._newest), self._newest):
                self._newest = newest
                self.horizon = next_tick(newest)
        return fresh

    def wake_up(self) -> Call[list[Message]]:
        """The read that waits for anything new in any partition."""
        return calls.read(
            self.paths,
            self.queue,
            self.horizon,
            1,
            "ascending",
            [c.partition for c in self.cursors],
            self.wait,
        )

    def pause(self, fresh: int, waited: float | None) -> float:
        """Seconds to sleep before the next wake-up read.

        ``fresh``: messages the last round gave; ``waited``: how long the last
        wake-up read took (None before the first). A round that found nothing
        after a wake-up the server did not hold means the server does not hold
        reads (or woke for a message already given): poll instead of spinning.
        """
        if fresh or waited is None or waited >= self.poll:
            return 0.0
        return self.poll - waited

    def again(self) -> None:
        """Read every partition again (after a wake-up)."""
        for cursor in self.cursors:
            cursor.caught_up = False
