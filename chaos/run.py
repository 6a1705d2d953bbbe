"""One chaos run, asynchronously: set up, load and faults, then the drain and the reads.

The server process and the backend are started and stopped by the caller
(:mod:`chaos.cli`), which owns them whatever happens here; this coroutine
only drives them (kills and restarts) through :mod:`chaos.faults`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from chaos import drain, faults
from chaos.api import APP, Api
from chaos.backends import Backend, Interference
from chaos.consumers import Consumer, GroupSpec
from chaos.history import History, Stored
from chaos.producers import PARTITIONS, Control, Producer
from chaos.servers import ServerProcess

T = TypeVar("T")
QUEUE = "chaos"
#: How long producers and consumers may keep retrying once the faults have stopped.
RETRY_SECONDS = 60.0
DRAIN_SECONDS = 240.0


@dataclass(frozen=True, slots=True)
class Options:
    backend: str
    seconds: float
    seed: int
    kills: int
    producers: int = 3
    consumers: int = 4  # per group
    workers: int = 2


@dataclass
class Outcome:
    stored: list[Stored]
    states: dict[str, dict[str, Any]]
    undrained: list[str]
    unresolved_posts: int


def groups_for(backend: Backend) -> list[GroupSpec]:
    lease = backend.lease_seconds
    return [
        GroupSpec("amo", "at_most_once", lease),
        GroupSpec("alo", "at_least_once", lease),
        GroupSpec("eo", "exactly_once", lease),
    ]


async def setup(api: Api, groups: list[GroupSpec]) -> None:
    body = {"queue_name": QUEUE, "partitions": PARTITIONS, "consistency": "strong"}
    reply = await api.request("POST", f"/v1/{APP}", json=body)
    if reply.status != 201:
        raise RuntimeError(f"creating the queue answered {reply.status}: {reply.body}")
    for group in groups:
        settings = {"guarantee": group.guarantee, "lease_seconds": group.lease_seconds}
        reply = await api.request("PUT", api.group_path(group.name), json=settings)
        if reply.status != 201:
            raise RuntimeError(f"creating group {group.name} answered {reply.status}: {reply.body}")


async def run(
    options: Options,
    backend: Backend,
    server: ServerProcess,
    key: str,
    history: History,
    steps: list[faults.Step],
) -> Outcome:
    groups = groups_for(backend)
    if backend.schema_alone:
        await asyncio.to_thread(server.start, workers=1)
        await asyncio.to_thread(server.stop)
        history.fault("schema created by a one-worker server")
    await asyncio.to_thread(server.start)
    history.fault(f"server: up (run {server.runs})")
    apis: list[Api] = []

    def api() -> Api:
        apis.append(Api(server.url, key, QUEUE))
        return apis[-1]

    control = Control()
    seed = options.seed
    producers = [
        Producer(f"p{i}", api(), history, random.Random(f"{seed}-p{i}"), control)
        for i in range(1, options.producers + 1)
    ]
    consumers = [
        Consumer(
            f"{g.name}-c{i}", g, api(), history, random.Random(f"{seed}-{g.name}-{i}"), control
        )
        for g in groups
        for i in range(1, options.consumers + 1)
    ]
    tasks: list[asyncio.Task[Any]] = []
    try:
        admin = api()
        await setup(admin, groups)
        watchdog = asyncio.create_task(_watch(server, backend, history))
        actors = [asyncio.create_task(p.run()) for p in producers]
        actors += [asyncio.create_task(c.run()) for c in consumers]
        nemesis = asyncio.create_task(_faults(options, steps, server, backend, history))
        tasks = [watchdog, nemesis, *actors]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # an actor or the watchdog only ends by raising
        history.fault("faults over: producers and consumers finish what they began")
        control.retry_until = history.now() + RETRY_SECONDS
        control.stop.set()
        await _unless_dead(asyncio.gather(*actors), watchdog)
        await asyncio.sleep(backend.settle + 0.5)  # every message readable (SPEC §4)
        stored, states, undrained = await _unless_dead(_finish(admin, history, groups), watchdog)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in apis:
            await client.aclose()
    unresolved = sum(len(p.unresolved) for p in producers)
    return Outcome(stored, states, undrained, unresolved)


async def _finish(
    admin: Api, history: History, groups: list[GroupSpec]
) -> tuple[list[Stored], dict[str, dict[str, Any]], list[str]]:
    history.fault("settling acknowledgements whose outcome is unknown")
    await drain.settle_unknown(admin, history, groups)
    history.fault("draining every group")
    undrained = await drain.drain(admin, history, groups, DRAIN_SECONDS)
    history.fault("reading the queue and the groups' state")
    stored = await drain.read_queue(admin)
    states = await drain.group_states(admin, groups)
    history.stored, history.states = stored, states
    return stored, states, undrained


async def _unless_dead(work: Awaitable[T], watchdog: asyncio.Task[None]) -> T:
    """Await ``work``, unless the watchdog raises first (then its error ends the run)."""
    task = asyncio.ensure_future(work)
    await asyncio.wait([task, watchdog], return_when=asyncio.FIRST_COMPLETED)
    if watchdog.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        watchdog.result()
    return await task


async def _watch(server: ServerProcess, backend: Backend, history: History) -> None:
    """Raise if the server dies on its own, or another process touches the backend.

    A crash nobody injected, or a cluster changed behind the run's back, ends
    the run (status 2): its history would prove nothing.
    """
    while True:
        for _ in range(5):
            await asyncio.sleep(0.2)
            if not server.down_on_purpose and not server.running:
                history.fault("server: exited on its own")
                raise RuntimeError(f"queuey serve exited on its own:\n{server.log_tail()}")
        try:
            backend.verify()
        except Interference as exc:
            history.fault(f"interference: {exc}")
            raise


async def _faults(
    options: Options,
    steps: list[faults.Step],
    server: ServerProcess,
    backend: Backend,
    history: History,
) -> None:
    await faults.inject(steps, server, backend, history)
    await asyncio.sleep(max(0.0, options.seconds - history.now()))
