"""The asyncio client: :class:`AsyncClient`, :class:`AsyncQueue`, :class:`AsyncGroup`.

The same shape as the blocking client (``queuey.client.sync``), module for
module and method for method, with ``await``, ``async for`` and ``async with``;
both send the calls of ``queuey.client.calls``.
"""

from queuey.client.aio.client import AsyncClient
from queuey.client.aio.consume import AsyncHandler
from queuey.client.aio.group import AsyncGroup
from queuey.client.aio.queue import AsyncQueue

__all__ = ["AsyncClient", "AsyncGroup", "AsyncHandler", "AsyncQueue"]
