"""The loop of :meth:`Group.consume <queuey.client.Group.consume>`: claim, handle, settle.

Each message claimed goes to the handler in turn; its lease is kept alive by
a :class:`~queuey.client.leases.LeaseKeeper` thread meanwhile, and it is
acknowledged if the handler returns, released if it raises. What is claimed
and not handled when the loop stops is given back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from queuey.client import calls
from queuey.client.errors import TRANSIENT, LeaseLost
from queuey.client.leases import LeaseKeeper
from queuey.client.models import Delivery, Tally

if TYPE_CHECKING:
    from queuey.client.sync.group import Group

log = logging.getLogger("queuey.client")


class Consumer:
    """One ``consume`` of a group: its handler, its leases and its tally."""

    def __init__(
        self, group: Group, handler: Callable[[Delivery], object], delay: int | None
    ) -> None:
        self.group = group
        self.handler = handler
        self.delay = delay
        self.tally = Tally()

    def run(
        self,
        limit: int,
        wait: float,
        stop: threading.Event | None,
        partitions: Iterable[int] | None,
        consumer: str | None,
    ) -> Tally:
        """Claim and handle until ``stop`` is set or Ctrl-C; what it did."""
        group = self.group
        stopped = stop or threading.Event()
        keeper = LeaseKeeper(group.extend)
        try:
            while not stopped.is_set():
                call = calls.claim(*group._at, limit, wait, partitions, consumer)
                batch = group._client.patiently(call, stopped) or []
                keeper.hold(batch)
                for delivery in batch:
                    if stopped.is_set():
                        break
                    self._handle(delivery, keeper)
                self._release(keeper)
        except KeyboardInterrupt:
            self._release(keeper)
        finally:
            keeper.close()
        return self.tally

    def _handle(self, delivery: Delivery, keeper: LeaseKeeper) -> None:
        tally = self.tally
        if keeper.is_lost(delivery):
            keeper.drop(delivery)
            tally.lost += 1
            return
        try:
            self.handler(delivery)
        except Exception:
            keeper.drop(delivery)
            tally.failed += 1
            log.exception("handler failed on %s; releasing it", delivery.ref)
            tally.released += self._settle(lambda: self.group.release([delivery], self.delay), 1)
            return
        keeper.drop(delivery)
        tally.handled += 1
        tally.acknowledged += self._settle(lambda: self.group.ack([delivery]), 1)

    def _release(self, keeper: LeaseKeeper) -> None:
        """Give back what was claimed and not handled (on stop)."""
        held = keeper.held()
        for delivery in held:
            keeper.drop(delivery)
        if held:
            self.tally.released += self._settle(lambda: self.group.release(held), len(held))

    def _settle(self, action: Callable[[], object], count: int) -> int:
        """Run an ack or release of ``count`` messages; how many counted (the rest: lost)."""
        try:
            action()
        except LeaseLost as exc:
            self.tally.lost += len(exc.lost)
            return count - len(exc.lost)
        except TRANSIENT as exc:
            log.warning("could not settle %d message(s): %s", count, exc)
            self.tally.lost += count
            return 0
        return count
