"""``queuey read``: print the messages of a queue, and with ``--follow`` tail it."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from typing import Any

import msgspec

from queuey.client.models import Message
from queuey.client.shell.arguments import number, partitions, since
from queuey.client.shell.terminal import Signals, out
from queuey.client.sync import Client


def declare(verbs: Any, common: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Declare ``read`` on the ``queuey`` subparsers."""
    read: argparse.ArgumentParser = verbs.add_parser(
        "read",
        parents=common,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="print messages of a queue (with --follow: tail it)",
        description="Print the messages of QUEUE at or after --since, oldest first, one JSON "
        "object a line (or bodies with --body); with --follow keep printing new ones.",
        epilog="examples:\n  queuey read orders --since 10m\n"
        "  queuey read orders --since now --follow --body",
    )
    read.add_argument("queue")
    read.add_argument(
        "--since",
        type=since,
        metavar="WHEN",
        help="now, a duration ago (30s, 10m, 2h, 1d), a timestamp or a message id "
        "(default: the oldest message)",
    )
    read.add_argument("--follow", "-f", action="store_true", help="wait for new messages")
    read.add_argument(
        "--partitions", type=partitions, metavar="1,2", help="default: all the queue has"
    )
    read.add_argument("--limit", type=number(1), metavar="N", help="stop after N messages")
    read.add_argument("--body", action="store_true", help="print bodies only")
    return read


def as_json(message: Message) -> str:
    """A message as ``queuey read`` prints it: one JSON object, the API's fields."""
    return msgspec.json.encode(
        {
            "message_id": message.message_id,
            "timestamp": message.timestamp,
            "body": message.body,
            "partition": message.partition,
            "content_type": message.content_type,
        }
    ).decode()


def run(client: Client, args: argparse.Namespace, _: Signals) -> int:
    messages: Iterator[Message] = client.queue(args.queue).iter(
        since=args.since, partitions=args.partitions, follow=args.follow
    )
    if args.limit is not None:
        messages = itertools.islice(messages, args.limit)
    for message in messages:
        out(message.body if args.body else as_json(message))
    return 0
