"""The driver's connections doing their I/O on the store's own asyncio event loop.

The driver's default reactor (libev) runs every connection on a thread of its
own: each statement crossed threads twice (the request handed to the reactor's
thread, which woke to send it; the answer handed back to the event loop with
``call_soon_threadsafe``, which wrote to the loop's self-pipe), each crossing
a wake-up, a system call and a turn of the GIL. On a web node whose process
has one core that was most of the driver's cost.

:class:`LoopConnection` is a driver connection (``cassandra.connection.Connection``)
whose socket is watched by the event loop the store was opened on
(``loop.add_reader``): answers are decoded and their callbacks run on that
loop's thread, and what the loop's tasks send in one turn of the loop goes
out in one ``send``. Requests' timeouts are the loop's timers.

What still runs on other threads: the driver's own (connecting, the control
connection's queries, heartbeats, reconnections; every call of the driver
that blocks, such as ``Cluster.connect`` and ``Session.prepare``, which the
store runs in an executor). A connection is opened by such a thread (its
handshake needs the loop running meanwhile: opening one on the loop's thread
would block it, and is refused); what those threads send or close is handed
to the loop thread-safely. Once the loop is closed (the store was not closed
on it), a connection closes itself where it is and fails what it carried.

One class per loop (:func:`connection_class`): the driver asks the class,
not a connection, for timers.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable
from typing import Any

from cassandra.connection import Connection, ConnectionException, ConnectionShutdown

#: Bytes read from the socket at a time (the driver's default is 4 KiB).
READ_SIZE = 65536
#: Errors of a non-blocking send or receive that only mean "not now".
NOT_NOW = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


def connection_class(loop: asyncio.AbstractEventLoop) -> type[LoopConnection]:
    """A :class:`LoopConnection` class bound to ``loop`` (call on the loop's thread)."""
    attributes = {"_loop": loop, "_loop_thread": threading.get_ident()}
    return type("LoopConnection", (LoopConnection,), attributes)


def call(loop: asyncio.AbstractEventLoop, thread: int, fn: Callable[..., Any], *args: Any) -> bool:
    """Run ``fn(*args)`` on ``loop`` soon: directly scheduled on its thread, thread-safely off it.

    False (nothing scheduled) when the loop is closed.
    """
    if loop.is_closed():
        return False
    try:
        if threading.get_ident() == thread:
            loop.call_soon(fn, *args)
        else:
            loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # closed meanwhile
        return False
    return True


class LoopTimer:
    """A driver timer (a request's timeout) on the loop: ``cancel()`` before it fires, or not.

    The request holds its timer and the timer the request's callback: the
    callback is dropped once fired or cancelled, so that no cycle keeps
    either for the garbage collector (~30 objects a statement, its rows included).
    """

    __slots__ = ("_callback", "_handle", "_thread")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        thread: int,
        timeout: float,
        callback: Callable[[], Any],
    ) -> None:
        self._callback: Callable[[], Any] | None = callback
        self._thread = thread
        self._handle: asyncio.TimerHandle | None = None
        if threading.get_ident() == thread and not loop.is_closed():
            self._handle = loop.call_later(timeout, self._fire)
        else:
            call(loop, thread, self._arm, loop, timeout)

    def _arm(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        if self._callback is not None:
            self._handle = loop.call_later(timeout, self._fire)

    def _fire(self) -> None:
        callback, self._callback, self._handle = self._callback, None, None
        if callback is not None:
            callback()

    def cancel(self) -> None:
        self._callback = None
        handle, self._handle = self._handle, None
        # Off the loop's thread dropping the callback is enough (the loop's timers are
        # not thread-safe): the timer fires and does nothing.
        if handle is not None and threading.get_ident() == self._thread:
            handle.cancel()


class LoopConnection(Connection):  # type: ignore[misc]
    """A driver connection whose reads, writes and timers run on ``_loop``."""

    _loop: asyncio.AbstractEventLoop
    _loop_thread: int
    is_closed: bool
    is_defunct: bool

    in_buffer_size = READ_SIZE

    @classmethod
    def initialize_reactor(cls) -> None:
        pass

    @classmethod
    def handle_fork(cls) -> None:
        pass

    @classmethod
    def create_timer(cls, timeout: float, callback: Callable[[], Any]) -> LoopTimer:
        return LoopTimer(cls._loop, cls._loop_thread, timeout, callback)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            # The driver waits for the handshake where it opens a connection.
            raise ConnectionException("a connection is opened off the event loop's thread")
        Connection.__init__(self, *args, **kwargs)
        self._queued: list[bytes] = []  # pushed by any thread, not yet handed to the loop
        self._queued_lock = threading.Lock()
        self._flush_scheduled = False
        # The loop's: what the socket did not take yet (watched for room while not empty).
        self._unsent = bytearray()
        self._fd = -1
        self._connect_socket()
        self._socket.setblocking(False)
        self._fd = self._socket.fileno()
        if not call(self._loop, self._loop_thread, self._watch):
            self._socket.close()
            raise ConnectionException("the event loop is closed")
        self._send_options_message()

    # -- the loop's side -------------------------------------------------------------

    def _watch(self) -> None:
        if not self.is_closed:
            self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        sock, size = self._socket, self.in_buffer_size
        got = ended = False
        try:
            while True:
                data = sock.recv(size)
                if not data:
                    ended = True  # the server closed it
                    break
                self._iobuf.write(data)
                got = True
                if len(data) < size:
                    break
        except OSError as exc:
            if exc.errno not in NOT_NOW:
                self.defunct(exc)
                return
        if got:
            self.process_io_buffer()
        if ended:
            self.close()

    def _flush(self) -> None:
        with self._queued_lock:
            self._flush_scheduled = False
            queued, self._queued = self._queued, []
        if self.is_closed or not queued:
            return
        if self._unsent:  # the socket is full: the writer sends it when it takes more
            self._unsent += b"".join(queued)
            return
        self._send(queued[0] if len(queued) == 1 else b"".join(queued))

    def _send(self, data: bytes | bytearray) -> None:
        """Send what the socket takes; watch for room while anything is left."""
        try:
            sent = self._socket.send(data)
        except OSError as exc:
            if exc.errno not in NOT_NOW:
                self.defunct(exc)
                return
            sent = 0
        if sent == len(data):
            if self._unsent:
                self._unsent = bytearray()
                self._loop.remove_writer(self._fd)
            return
        watching = bool(self._unsent)
        self._unsent = bytearray(data[sent:])
        if not watching:
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        if self.is_closed:
            return
        self._send(self._unsent)

    # -- any thread ------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        """Send ``data`` (the driver's encoded frames) in order, from any thread."""
        with self._queued_lock:
            self._queued.append(data)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        if not call(self._loop, self._loop_thread, self._flush):
            self.defunct(ConnectionShutdown("the event loop is closed"))

    def close(self) -> None:
        with self.lock:
            if self.is_closed:
                return
            self.is_closed = True
        if not call(self._loop, self._loop_thread, self._closed):
            self._closed(on_loop=False)

    def _closed(self, on_loop: bool = True) -> None:
        if on_loop and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            if self._unsent:
                self._loop.remove_writer(self._fd)
        if self._socket is not None:
            self._socket.close()
        if not self.is_defunct:
            # Nothing in flight is left hanging (as the driver's own reactors do).
            self.error_all_requests(ConnectionShutdown(f"Connection to {self.endpoint} was closed"))
