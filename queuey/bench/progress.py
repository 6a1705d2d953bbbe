"""The progress bar of ``queuey bench`` on a terminal."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """A one-line progress bar, redrawn in place with ``\\r`` at most 10 times a second."""

    WIDTH = 30

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.total: int | None = None
        self.done = 0
        self.errors = 0
        self._started = time.perf_counter()
        self._drawn = 0.0
        self._last_width = 0
        self._shown = False

    def start(self, total: int | None) -> None:
        """Begin counting towards ``total`` messages (None: unknown, no bar)."""
        self.total = total
        self._started = time.perf_counter()
        self.draw()

    def advance(self, messages: int, errors: int = 0) -> None:
        """Count messages done (and failed requests) and redraw if it is time."""
        self.done += messages
        self.errors += errors
        now = time.perf_counter()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self.draw(now)

    def draw(self, now: float | None = None) -> None:
        """Redraw the line now."""
        if not self.enabled:
            return
        elapsed = max((now or time.perf_counter()) - self._started, 1e-9)
        rate = f"{self.done / elapsed:,.0f} msg/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * self.WIDTH)
            line = (
                f"[{bar:-<{self.WIDTH}}] {share:4.0%} {self.done}/{self.total} messages"
                f"  {rate}  errors {self.errors}"
            )
        else:
            line = f"{self.done} messages  {rate}  errors {self.errors}"
        pad = " " * max(0, self._last_width - len(line))
        self._last_width = len(line)
        self._shown = True
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line, if a line was begun."""
        if self._shown:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
