"""``queuey post``: post a message, or one message per line of the input."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from queuey.client.shell.arguments import number
from queuey.client.shell.terminal import Signals, out
from queuey.client.sync import Client

#: The largest batch the server takes (SPEC §3): ``post --lines`` sends batches of this.
MAX_BATCH = 1000


def declare(verbs: Any, common: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Declare ``post`` on the ``queuey`` subparsers."""
    post: argparse.ArgumentParser = verbs.add_parser(
        "post",
        parents=common,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="post a message",
        description="Post BODY (or standard input: no BODY, or -) to QUEUE as one message, "
        "or one message per line with --lines. Prints each message's id.",
        epilog="examples:\n  queuey post orders 'first order'\n"
        "  date | queuey post orders -\n  cat orders.txt | queuey post orders --lines",
    )
    post.add_argument("queue")
    post.add_argument("body", nargs="?", default="-", help="the message (default -: stdin)")
    post.add_argument("--lines", action="store_true", help="one message per line of the input")
    post.add_argument("--ttl", type=number(1), metavar="S", help="seconds to keep it")
    post.add_argument("--partition", type=number(1), metavar="N", help="partition (1..)")
    post.add_argument("--content-type", metavar="TYPE", help="media type (text/plain)")
    post.add_argument("--idempotency-key", metavar="K", help="default: a fresh one")
    post.add_argument("--json", action="store_true", help="print each answer as a JSON line")
    return post


def _chomp(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def run(client: Client, args: argparse.Namespace, _: Signals) -> int:
    # As the shell's $(...) does: a message piped in from `echo` does not end in a newline.
    text = _chomp(sys.stdin.read()) if args.body == "-" else args.body
    queue = client.queue(args.queue)
    if args.lines:
        items: list[dict[str, Any]] = [
            {
                "body": line,
                "ttl": args.ttl,
                "partition": args.partition,
                "content_type": args.content_type,
            }
            for line in text.splitlines()
            if line
        ]
        sent = []
        for first in range(0, len(items), MAX_BATCH):
            sent.extend(queue.post_many(items[first : first + MAX_BATCH]))
    else:
        if not text:
            print("queuey post: the message is empty", file=sys.stderr)
            return 1
        sent = [
            queue.post(
                text,
                ttl=args.ttl,
                partition=args.partition,
                content_type=args.content_type,
                idempotency_key=args.idempotency_key,
            )
        ]
    for one in sent:
        if args.json:
            answer = {"key": one.message_id, "timestamp": one.timestamp, "partition": one.partition}
            out(msgspec.json.encode(answer).decode())
        else:
            out(one.message_id)
    return 0
