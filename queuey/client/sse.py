"""Reading a ``text/event-stream`` (SPEC §7), as the WHATWG EventSource does.

Bytes go in as they arrive, split anywhere; events come out. Lines end with
CR LF, LF or CR (and only those: a message body may hold U+2028 and friends,
which ``str.splitlines`` would split on); a blank line dispatches the event;
``data:`` lines join with LF; ``id:`` sets the last event id that a
reconnection sends as ``Last-Event-ID``; ``retry:`` sets the reconnection delay
in milliseconds; lines beginning with ``:`` are comments (heartbeats).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import msgspec

from queuey.client.errors import QueueyError
from queuey.client.models import Message

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event."""

    event: str
    data: str
    #: The stream's last event id once this event arrived (None if never set).
    id: str | None


class EventParser:
    """An incremental event-stream parser; see the module's docstring."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._after_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id_buffer: str | None = None
        #: The last event id: sent back as ``Last-Event-ID`` on reconnecting.
        self.last_id: str | None = None
        #: The reconnection delay the server asked for, in milliseconds.
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr and text:
            # A CR ended the previous chunk: an LF now is the rest of that line end.
            text = text.removeprefix("\n")
            self._after_cr = False
        buffer = self._partial + text
        events = []
        start = 0
        for end in _LINE_END.finditer(buffer):
            event = self._line(buffer[start : end.start()])
            if event is not None:
                events.append(event)
            start = end.end()
        self._partial = buffer[start:]
        self._after_cr = buffer.endswith("\r")
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        self.last_id = self._id_buffer
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(event=event or "message", data="\n".join(data), id=self.last_id)


def message_of(event: Event) -> Message | None:
    """The message an event of a Queuey stream carries (None for other kinds of event)."""
    if event.event != "message":
        return None
    try:
        item = msgspec.json.decode(event.data)
    except msgspec.DecodeError:
        raise QueueyError(f"an event of the stream is not JSON: {event.data[:100]!r}") from None
    if not isinstance(item, dict):
        raise QueueyError(f"an event of the stream is not a message: {event.data[:100]!r}")
    return Message.from_json(item)
