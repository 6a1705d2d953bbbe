"""What a peer module provides, and one figure of the peer table.

A peer is built once (:meth:`Peer.build`), then started among the bench's
servers (:meth:`Peer.start`), which gives the figures to measure: each an
ordinary bench :class:`~bench.harness.Scenario` with the closest equivalent
of one of Queuey's requests, and the durability it was measured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bench.harness import Harness, Scenario
from bench.servers import Fleet

QUEUEY_POST_WEAK = "peers-queuey-post-weak"
QUEUEY_POST_STRONG = "peers-queuey-post-strong"
QUEUEY_READ = "peers-queuey-read-10"
"""Keys of Queuey's own figures in the peer table, measured in the same rounds."""


@dataclass(frozen=True)
class Entry:
    """One figure of the peer table."""

    scenario: Scenario
    system: str
    """The peer and its pinned version, as the table shows it."""
    request: str
    """What one request does, in the peer's terms."""
    durability: str
    """What an answered write survives."""
    versus: str | None
    """The key of Queuey's figure with the closest request and durability; None for Queuey's."""
    warmup: float = 0.0
    """Seconds of extra, untimed load before the measured rounds (a JVM's JIT compiler)."""


class Peer(Protocol):
    """One peer system: its name, pinned version, build, and started servers' figures."""

    key: str
    """Its name in ``--only`` and in its figures' keys."""
    name: str
    version: str

    def build(self) -> None:
        """Fetch or build it into var/peers/ (raises :class:`bench.peers.build.BuildError`)."""

    def start(self, bench: Harness, fleet: Fleet) -> list[Entry]:
        """Start its servers in ``fleet``, put its data in place, and return its figures."""
        ...
