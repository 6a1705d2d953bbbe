"""``queuey consume``: run a command for each message of a consumer group."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from typing import Any

from queuey.client.models import Delivery
from queuey.client.shell.arguments import number
from queuey.client.shell.terminal import Signals
from queuey.client.sync import Client


class CommandFailed(Exception):
    """The command of ``queuey consume`` exited with a status other than 0."""


def declare(verbs: Any, common: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Declare ``consume`` on the ``queuey`` subparsers (CMD ARGS: see ``split_command``)."""
    consume: argparse.ArgumentParser = verbs.add_parser(
        "consume",
        parents=common,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run a command for each message of a consumer group",
        description="Claim messages of QUEUE in consumer group --group and run CMD ARGS "
        "for each, with the body on standard input and QUEUEY_MESSAGE_ID, "
        "QUEUEY_PARTITION, QUEUEY_TIMESTAMP, QUEUEY_DELIVERIES, QUEUEY_CONTENT_TYPE in "
        "its environment. Exit status 0 acknowledges the message; anything else "
        "releases it (again after --delay seconds). Runs until Ctrl-C (or --count).",
        epilog="example:\n  queuey consume orders --group mailer --create -- ./send-mail.sh",
    )
    consume.usage = "queuey consume [options] QUEUE --group G -- CMD [ARGS ...]"
    consume.add_argument("queue")
    consume.add_argument("--group", "-g", required=True, help="consumer group")
    consume.add_argument("--create", action="store_true", help="create the group if need be")
    consume.add_argument("--limit", type=number(1, 1000), default=10, help="per claim (10)")
    consume.add_argument(
        "--wait", type=number(0, 60), default=20, metavar="S", help="seconds a claim waits (20)"
    )
    consume.add_argument("--delay", type=number(0), metavar="S", help="before a retry (0)")
    consume.add_argument("--count", type=number(1), metavar="N", help="stop after N acks")
    return consume


def run(client: Client, args: argparse.Namespace, signals: Signals) -> int:
    command: list[str] = getattr(args, "command", [])
    if not command:
        print(
            "queuey consume: no command given (queuey consume QUEUE -g G -- CMD)", file=sys.stderr
        )
        return 2
    if shutil.which(command[0]) is None:
        print(f"queuey consume: {command[0]}: command not found", file=sys.stderr)
        return 1
    group = client.queue(args.queue).group(args.group)
    if args.create:
        group.create()
    stop = threading.Event()
    done = 0

    def handle(delivery: Delivery) -> None:
        nonlocal done
        environment = {
            **os.environ,
            "QUEUEY_MESSAGE_ID": delivery.message_id,
            "QUEUEY_PARTITION": str(delivery.partition),
            "QUEUEY_TIMESTAMP": delivery.timestamp,
            "QUEUEY_DELIVERIES": str(delivery.deliveries),
            "QUEUEY_CONTENT_TYPE": delivery.content_type,
        }
        finished = subprocess.run(
            command, input=delivery.body.encode(), env=environment, check=False
        )
        if finished.returncode != 0:
            raise CommandFailed(f"{command[0]} exited with status {finished.returncode}")
        done += 1
        if args.count is not None and done >= args.count:
            stop.set()

    tally = group.consume(handle, limit=args.limit, wait=args.wait, stop=stop, delay=args.delay)
    if not stop.is_set():
        return signals.status  # interrupted: consume gave back what it held
    return 0 if tally.lost == 0 else 1
