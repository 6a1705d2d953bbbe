"""``queuey queues``: list the application's queues."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from queuey.client.shell.terminal import Signals, out
from queuey.client.sync import Client


def declare(verbs: Any, common: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Declare ``queues`` on the ``queuey`` subparsers."""
    queues: argparse.ArgumentParser = verbs.add_parser(
        "queues",
        parents=common,
        help="list the application's queues",
        description="Print the name of every queue of the application (JSON lines with "
        "settings with --details, and message counts with --count).",
    )
    queues.add_argument("--details", action="store_true", help="settings too")
    queues.add_argument("--count", action="store_true", help="message counts too")
    return queues


def run(client: Client, args: argparse.Namespace, _: Signals) -> int:
    for item in client.queues(details=args.details, count=args.count):
        if args.details or args.count:
            out(msgspec.json.encode(item).decode())
        else:
            out(item["queue_name"])
    return 0
