"""The shell verbs on the client: ``queuey post``, ``read``, ``consume`` and ``queues``.

They find the server in ``--url``/``--app``/``--key`` (or ``$QUEUEY_URL``,
``$QUEUEY_APP``, ``$QUEUEY_KEY``; ``--token``/``$QUEUEY_TOKEN`` for a bearer
token). An error is one line on standard error and exit status 1; a bad
command line is status 2; Ctrl-C (or SIGTERM) stops cleanly with 130 (143),
giving back what ``consume`` had claimed and not handled.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import msgspec

from queuey.client.core import DEFAULT_RETRY, Retry
from queuey.client.errors import QueueyError
from queuey.client.models import Delivery, Message
from queuey.client.sync import Client

VERBS = ("post", "read", "consume", "queues")
DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_APP = "queuey"
#: The largest batch the server takes (SPEC §3): ``post --lines`` sends batches of this.
MAX_BATCH = 1000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class CommandFailed(Exception):
    """The command of ``queuey consume`` exited with a status other than 0."""


# -- arguments --------------------------------------------------------------------


def _number(low: int, high: int | None = None) -> Callable[[str], int]:
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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text[:20]}" is not a number') from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds")
    return value


def _partitions(text: str) -> list[int]:
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


def _connection() -> argparse.ArgumentParser:
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
        "--timeout", type=_seconds, default=10.0, metavar="S", help="seconds per request (10)"
    )
    where.add_argument(
        "--retries",
        type=_number(0, 100),
        default=DEFAULT_RETRY.attempts,
        metavar="N",
        help=f"retries of a request that failed for a passing reason ({DEFAULT_RETRY.attempts})",
    )
    return common


def add_verbs(verbs: Any) -> dict[str, argparse.ArgumentParser]:
    """Declare ``post``, ``read``, ``consume`` and ``queues`` on the ``queuey`` subparsers;
    their parsers by name."""
    common = [_connection()]
    formatter = argparse.RawDescriptionHelpFormatter

    post = verbs.add_parser(
        "post",
        parents=common,
        formatter_class=formatter,
        help="post a message",
        description="Post BODY (or standard input: no BODY, or -) to QUEUE as one message, "
        "or one message per line with --lines. Prints each message's id.",
        epilog="examples:\n  queuey post orders 'first order'\n"
        "  date | queuey post orders -\n  cat orders.txt | queuey post orders --lines",
    )
    post.add_argument("queue")
    post.add_argument("body", nargs="?", default="-", help="the message (default -: stdin)")
    post.add_argument("--lines", action="store_true", help="one message per line of the input")
    post.add_argument("--ttl", type=_number(1), metavar="S", help="seconds to keep it")
    post.add_argument("--partition", type=_number(1), metavar="N", help="partition (1..)")
    post.add_argument("--content-type", metavar="TYPE", help="media type (text/plain)")
    post.add_argument("--idempotency-key", metavar="K", help="default: a fresh one")
    post.add_argument("--json", action="store_true", help="print each answer as a JSON line")

    read = verbs.add_parser(
        "read",
        parents=common,
        formatter_class=formatter,
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
        "--partitions", type=_partitions, metavar="1,2", help="default: all the queue has"
    )
    read.add_argument("--limit", type=_number(1), metavar="N", help="stop after N messages")
    read.add_argument("--body", action="store_true", help="print bodies only")

    consume = verbs.add_parser(
        "consume",
        parents=common,
        formatter_class=formatter,
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
    consume.add_argument("--limit", type=_number(1, 1000), default=10, help="per claim (10)")
    consume.add_argument(
        "--wait", type=_number(0, 60), default=20, metavar="S", help="seconds a claim waits (20)"
    )
    consume.add_argument("--delay", type=_number(0), metavar="S", help="before a retry (0)")
    consume.add_argument("--count", type=_number(1), metavar="N", help="stop after N acks")

    queues = verbs.add_parser(
        "queues",
        parents=common,
        help="list the application's queues",
        description="Print the name of every queue of the application (JSON lines with "
        "settings with --details, and message counts with --count).",
    )
    queues.add_argument("--details", action="store_true", help="settings too")
    queues.add_argument("--count", action="store_true", help="message counts too")
    return {"post": post, "read": read, "consume": consume, "queues": queues}


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``queuey consume``'s own arguments, and CMD ARGS: everything after the first ``--``.

    (argparse cannot take a command line after options of its own.)
    """
    if argv[:1] == ["consume"] and "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


# -- running ------------------------------------------------------------------------


class _Signals:
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


class _OneLine(logging.Formatter):
    """The client's warnings as one line each (no tracebacks), prefixed with the verb."""

    def __init__(self, verb: str) -> None:
        super().__init__()
        self.verb = verb

    def format(self, record: logging.LogRecord) -> str:
        line = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            line = f"{line}: {record.exc_info[1]}"
        return f"queuey {self.verb}: {line}"


def run(args: argparse.Namespace) -> int:
    """Run a shell verb; its exit status."""
    signals = _Signals()
    signals.install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(args.verb))
    log = logging.getLogger("queuey.client")
    log.addHandler(handler)
    log.propagate = False
    try:
        with Client(
            args.url,
            app=args.app,
            key=args.key,
            token=args.token,
            timeout=args.timeout,
            retry=Retry(attempts=args.retries),
        ) as client:
            verb: Callable[[Client, argparse.Namespace, _Signals], int] = {
                "post": _post,
                "read": _read,
                "consume": _consume,
                "queues": _queues,
            }[args.verb]
            return verb(client, args, signals)
    except QueueyError as exc:
        print(f"queuey {args.verb}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return signals.status
    except BrokenPipeError:
        # The reader went away (`queuey read q | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        signals.uninstall()
        log.removeHandler(handler)
        log.propagate = True


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _chomp(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def _post(client: Client, args: argparse.Namespace, _: _Signals) -> int:
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
            _out(msgspec.json.encode(answer).decode())
        else:
            _out(one.message_id)
    return 0


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


def _read(client: Client, args: argparse.Namespace, _: _Signals) -> int:
    messages: Iterator[Message] = client.queue(args.queue).iter(
        since=args.since, partitions=args.partitions, follow=args.follow
    )
    if args.limit is not None:
        messages = itertools.islice(messages, args.limit)
    for message in messages:
        _out(message.body if args.body else as_json(message))
    return 0


def _consume(client: Client, args: argparse.Namespace, signals: _Signals) -> int:
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


def _queues(client: Client, args: argparse.Namespace, _: _Signals) -> int:
    for item in client.queues(details=args.details, count=args.count):
        if args.details or args.count:
            _out(msgspec.json.encode(item).decode())
        else:
            _out(item["queue_name"])
    return 0
