"""Waiting in the asyncio client: a sleep that a stop event cuts short."""

from __future__ import annotations

import asyncio
import contextlib


async def sleep(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep, or less if ``stop`` is set meanwhile; whether it is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
