"""The command line of ``queuey bench``: its options, and their defaults for each mode."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

#: Defaults that depend on the mode: (posting, reading, consuming in a group).
DEFAULT_CONCURRENCY = (16, 1, 4)
DEFAULT_BATCH = (1, 100, 100)
DEFAULT_POST_MESSAGES = 1000
#: The largest batch and page the server accepts (SPEC §3).
MAX_BATCH = 1000


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than minimum value 1")
    return value


def _batch(text: str) -> int:
    """An argparse type: a batch or page size the server accepts (1..1000)."""
    value = _positive(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"{value} is greater than maximum value {MAX_BATCH}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``queuey bench`` on its subcommand parser."""
    parser.description = (
        "Post messages to a queue of any Queuey server, or read them back by paging with "
        "`since`, and report rate, latency percentiles and errors."
    )
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--app", required=True, help="application name")
    parser.add_argument("--key", required=True, help="an application key of --app")
    parser.add_argument("--queue", required=True, help="queue name")
    parser.add_argument(
        "--create", action="store_true", help="create the queue first (kept if it exists)"
    )
    parser.add_argument(
        "--consistency",
        choices=("weak", "strong", "very_strong"),
        help="consistency of a queue made by --create (default: the server's, strong)",
    )
    parser.add_argument(
        "--messages",
        type=_positive,
        metavar="N",
        help=f"messages to post (default {DEFAULT_POST_MESSAGES}); with --read, the most "
        "each reader reads (default: all); with --group, the most consumed in all",
    )
    parser.add_argument(
        "--size", type=_positive, default=140, metavar="S", help="bytes per message (default 140)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        metavar="C",
        help=f"connections posting at once (default {DEFAULT_CONCURRENCY[0]}); with --read, "
        f"readers each paging the whole queue (default {DEFAULT_CONCURRENCY[1]}); with "
        f"--group, consumers sharing the group (default {DEFAULT_CONCURRENCY[2]})",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--read", action="store_true", help="read the queue back with `since` instead of posting"
    )
    mode.add_argument(
        "--group",
        metavar="G",
        help="consume with consumer group G (made if need be): claim --batch messages "
        "and acknowledge them, until the group has none left",
    )
    parser.add_argument(
        "--batch",
        type=_batch,
        metavar="B",
        help=f"messages per POST (default {DEFAULT_BATCH[0]}; more than 1 sends JSON batches);"
        f" with --read, messages per page (default {DEFAULT_BATCH[1]}); with --group, per"
        f" claim (default {DEFAULT_BATCH[2]})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@dataclass(frozen=True, slots=True)
class Options:
    """The resolved options of one run (mode-dependent defaults filled in)."""

    url: str
    app: str
    key: str
    queue: str
    create: bool
    consistency: str | None
    read: bool
    group: str | None
    messages: int | None
    size: int
    concurrency: int
    batch: int
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        mode = 1 if args.read else 2 if args.group else 0
        messages = args.messages
        if messages is None and mode == 0:
            messages = DEFAULT_POST_MESSAGES
        return cls(
            url=args.url.rstrip("/"),
            app=args.app,
            key=args.key,
            queue=args.queue,
            create=args.create,
            consistency=args.consistency,
            read=args.read,
            group=args.group,
            messages=messages,
            size=args.size,
            concurrency=args.concurrency or DEFAULT_CONCURRENCY[mode],
            batch=args.batch or DEFAULT_BATCH[mode],
            quiet=args.quiet,
        )

    @property
    def path(self) -> str:
        """The queue's path below the base URL."""
        return f"/v1/{self.app}/{self.queue}"
