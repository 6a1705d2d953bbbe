"""What the shell verbs' command lines share: the server flags and the types of values."""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable

from queuey.client.core import DEFAULT_RETRY

DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_APP = "queuey"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'"{text[:20]}" is not a number') from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than minimum value {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is greater than maximum value {high}")
        return value

    return convert


def seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text[:20]}" is not a number') from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds")
    return value


def partitions(text: str) -> list[int]:
    """An argparse type: partitions as ``1,2,...``."""
    try:
        found = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text[:20]}" is not a list of numbers') from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError(f'"{text[:20]}" is not a list of partitions (1, 2, ...)')
    return found


def since(text: str, now: float | None = None) -> str:
    """``--since``: ``now``, a duration ago (``90s``, ``10m``, ``2h``, ``1d``), or a TS or ID."""
    moment = time.time() if now is None else now
    if text == "now":
        return f"{moment:.7f}"
    duration = _DURATION.fullmatch(text)
    if duration:
        return f"{max(0.0, moment - float(duration[1]) * _UNITS[duration[2]]):.7f}"
    return text


def connection() -> argparse.ArgumentParser:
    """The flags every verb takes to find the server."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("server")
    where.add_argument(
        "--url",
        default=os.environ.get("QUEUEY_URL") or DEFAULT_URL,
        help=f"the server (default: $QUEUEY_URL or {DEFAULT_URL})",
    )
    where.add_argument(
        "--app",
        default=os.environ.get("QUEUEY_APP") or DEFAULT_APP,
        help=f"application name (default: $QUEUEY_APP or {DEFAULT_APP})",
    )
    where.add_argument(
        "--key", default=os.environ.get("QUEUEY_KEY"), help="application key (default: $QUEUEY_KEY)"
    )
    where.add_argument(
        "--token", default=os.environ.get("QUEUEY_TOKEN"), help="bearer token ($QUEUEY_TOKEN)"
    )
    where.add_argument(
        "--timeout", type=seconds, default=10.0, metavar="S", help="seconds per request (10)"
    )
    where.add_argument(
        "--retries",
        type=number(0, 100),
        default=DEFAULT_RETRY.attempts,
        metavar="N",
        help=f"retries of a request that failed for a passing reason ({DEFAULT_RETRY.attempts})",
    )
    return common
