"""A debugging trace: JSON lines appended to the file ``QUEUEY_CASSANDRA_TRACE`` names.

Off unless that variable is set (read once, at import). Each line is one
event of this process (``pid``, wall-clock ``t``); several processes may
append to one file. Used to find out, after a chaos run, what each window
compare-and-set read, wrote and leased, and which messages were written late.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

#: The file to append to; None: tracing is off.
PATH = os.environ.get("QUEUEY_CASSANDRA_TRACE") or None


def enabled() -> bool:
    return PATH is not None


def trace(kind: str, **fields: Any) -> None:
    """Append one event (nothing when tracing is off)."""
    if PATH is None:
        return
    line = json.dumps({"kind": kind, "t": time.time(), "pid": os.getpid(), **fields})
    with open(PATH, "a", encoding="utf-8") as out:
        out.write(line + "\n")
