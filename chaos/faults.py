"""The nemesis: when to SIGKILL the server (and a Cassandra node), and when they come back.

The schedule is drawn from the seed before the run, so two runs with one
seed inject the same faults at the same moments (what the server is doing at
that moment still differs). Server kills are spread over the middle of the
run, each followed by a pause of 0.2-2 s before the restart, during which
producers and consumers meet refused connections. On a cluster, one node is
killed early (the call returns once the other nodes have convicted it, 10-25
s) and restarted after the middle; one server kill falls while it is down.
When :func:`inject` returns, every fault has been healed.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from chaos.backends import Backend
from chaos.history import History
from chaos.servers import ServerProcess


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    action: str  # "kill-server", "kill-node" or "restart-node"
    node: int = 0
    down: float = 0.0  # how long the server stays dead

    def describe(self) -> str:
        if self.action == "kill-server":
            return f"{self.at:6.1f}s  SIGKILL the server, restart it {self.down:.1f}s later"
        return f"{self.at:6.1f}s  {self.action.replace('-', ' ')} {self.node}"


def schedule(backend: Backend, seconds: float, kills: int, rng: random.Random) -> list[Step]:
    steps: list[Step] = []
    if kills:
        begin, end = 0.15 * seconds, 0.8 * seconds
        slot = (end - begin) / kills
        for i in range(kills):
            at = begin + slot * i + rng.uniform(0.1, 0.9) * slot
            steps.append(Step(round(at, 1), "kill-server", down=round(rng.uniform(0.2, 2.0), 1)))
    if backend.nodes:
        node = rng.randint(1, backend.nodes)
        steps.append(Step(round(0.12 * seconds, 1), "kill-node", node))
        steps.append(Step(round(0.6 * seconds, 1), "restart-node", node))
    steps.sort(key=lambda s: s.at)
    return steps


async def inject(
    steps: list[Step], server: ServerProcess, backend: Backend, history: History
) -> None:
    """Carry the steps out at their times (late if the one before took longer)."""
    for step in steps:
        await asyncio.sleep(max(0.0, step.at - history.now()))
        if step.action == "kill-server":
            history.fault("server: SIGKILL (process group)")
            await asyncio.to_thread(server.kill)
            history.fault("server: dead")
            await asyncio.sleep(step.down)
            history.fault("server: starting")
            await asyncio.to_thread(server.start)
            history.fault(f"server: up again (run {server.runs})")
        elif step.action == "kill-node":
            history.fault(f"cassandra node {step.node}: SIGKILL")
            await asyncio.to_thread(backend.kill_node, step.node)
            history.fault(f"cassandra node {step.node}: seen DOWN by the others")
        else:
            history.fault(f"cassandra node {step.node}: restarting")
            await asyncio.to_thread(backend.restart_node, step.node)
            history.fault(f"cassandra node {step.node}: up again")
