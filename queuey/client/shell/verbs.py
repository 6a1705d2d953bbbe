"""The table of shell verbs: declaring them on ``queuey``'s parser, and running one."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from queuey.client.core import Retry
from queuey.client.errors import QueueyError
from queuey.client.shell import consume, post, queues, read
from queuey.client.shell.arguments import connection
from queuey.client.shell.terminal import OneLine, Signals
from queuey.client.sync import Client

#: Declares a verb on the ``queuey`` subparsers (given the common parents); its parser.
Declare = Callable[[Any, list[argparse.ArgumentParser]], argparse.ArgumentParser]
#: Runs a verb; its exit status.
Run = Callable[[Client, argparse.Namespace, Signals], int]

#: Each verb's ``declare`` and ``run`` (one module each), in the order of ``--help``.
TABLE: dict[str, tuple[Declare, Run]] = {
    "post": (post.declare, post.run),
    "read": (read.declare, read.run),
    "consume": (consume.declare, consume.run),
    "queues": (queues.declare, queues.run),
}
VERBS = tuple(TABLE)


def add_verbs(verbs: Any) -> dict[str, argparse.ArgumentParser]:
    """Declare ``post``, ``read``, ``consume`` and ``queues`` on the ``queuey`` subparsers;
    their parsers by name."""
    common = [connection()]
    return {name: declare(verbs, common) for name, (declare, _) in TABLE.items()}


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``queuey consume``'s own arguments, and CMD ARGS: everything after the first ``--``.

    (argparse cannot take a command line after options of its own.)
    """
    if argv[:1] == ["consume"] and "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


def run(args: argparse.Namespace) -> int:
    """Run a shell verb; its exit status."""
    signals = Signals()
    signals.install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine(args.verb))
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
            _, verb = TABLE[args.verb]
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
