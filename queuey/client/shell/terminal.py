"""The shell verbs at the terminal: signals, one-line warnings, lines out."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any


class Signals:
    """SIGINT and SIGTERM as KeyboardInterrupt, remembering which one came."""

    def __init__(self) -> None:
        self.received = signal.SIGINT
        self._before: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGTERM, self._raise)

    def uninstall(self) -> None:
        if self._before is not None:
            signal.signal(signal.SIGTERM, self._before)

    def _raise(self, signum: int, _: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        raise KeyboardInterrupt

    @property
    def status(self) -> int:
        return 128 + int(self.received)


class OneLine(logging.Formatter):
    """The client's warnings as one line each (no tracebacks), prefixed with the verb."""

    def __init__(self, verb: str) -> None:
        super().__init__()
        self.verb = verb

    def format(self, record: logging.LogRecord) -> str:
        line = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            line = f"{line}: {record.exc_info[1]}"
        return f"queuey {self.verb}: {line}"


def out(line: str) -> None:
    """Print a line of output at once (a reader may be following it)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
