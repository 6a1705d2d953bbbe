"""Hearing SIGTERM in a server worker before the server drains its connections.

granian stops a worker with SIGTERM (SIGINT from a terminal): the worker stops
accepting, lets every connection finish the request under way, and only then
runs the lifespan's shutdown. A claim held for up to a minute would hold that
drain as long, so the app must hear the signal itself, at once, to answer such
requests as they stand.

granian listens through asyncio's ``loop.add_signal_handler``: asyncio leaves a
no-op as the Python-level handler and dispatches the signal from its wakeup
fd, which the interpreter writes whatever Python-level handler is installed.
So a handler installed in front (:func:`on_stop`) runs as well, and granian's
own stays untouched. granian's version is pinned: check this when upgrading.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType

#: The signals that stop a granian worker.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` on the running loop at SIGTERM or SIGINT; return what undoes that.

    The handler that was there before still runs after ours. Outside the main
    thread (where no signal handler can be set) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    before: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        previous = before.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # as if we had not been here: the default action
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for number in STOP_SIGNALS:
        before[number] = signal.getsignal(number)
        signal.signal(number, handler)

    def undo() -> None:
        for number, previous in before.items():
            if signal.getsignal(number) is handler:
                signal.signal(number, signal.SIG_DFL if previous is None else previous)

    return undo
