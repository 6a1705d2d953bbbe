"""The ``queuey`` command: ``serve``, ``init`` and ``bench``."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from queuey import __version__
from queuey.config import ConfigError, load

STARTER = """\
# Queuey configuration (written by `queuey init`). See docs/configuration.md.

[server]
host = "127.0.0.1"
port = 5000

[storage]
url = "sqlite:///{db}"

[application_keys]
queuey = ["{key}"]

[cors]
origins = []

[limits]
max_message_bytes = 262144
max_request_bytes = 8388608
"""


def init(path: str) -> int:
    """Write a starter configuration with a fresh key; never overwrite a file."""
    target = Path(path)
    if target.exists():
        print(f"{path}: already exists; not overwritten", file=sys.stderr)
        return 1
    key = secrets.token_hex(16)
    db = target.resolve().parent / "queuey.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("x", encoding="utf-8") as handle:
        handle.write(STARTER.format(db=db, key=key))
    print(f"Wrote {path}. Application 'queuey' has the key:")
    print(key)
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run Queuey on granian with the resolved settings."""
    from granian import Granian
    from granian.constants import Interfaces

    overrides = {"host": args.host, "port": args.port, "workers": args.workers}
    try:
        settings = load(args.config, overrides=overrides)
        # Fail here, with one line, rather than inside every worker.
        from queuey.storage import StorageURLError, open_storage

        open_storage(settings.storage_url)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except StorageURLError as exc:
        print(f"{settings.path}: storage.url: {exc}", file=sys.stderr)
        return 2
    # Workers build the app from the environment: hand them the resolved choices.
    os.environ["QUEUEY_CONFIG"] = str(settings.path)
    os.environ["QUEUEY_STORAGE_URL"] = settings.storage_url
    os.environ["QUEUEY_HOST"] = settings.host
    os.environ["QUEUEY_PORT"] = str(settings.port)
    print(
        f"Queuey {__version__} on http://{settings.host}:{settings.port}"
        f" ({settings.workers} worker(s), storage {settings.storage_url})",
        flush=True,
    )
    Granian(
        "queuey.api.app:from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        log_access=args.access_log,
    ).serve()
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="queuey", description="Queuey, an HTTP message queue.")
    top.add_argument("--version", action="version", version=f"queuey {__version__}")
    verbs = top.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("serve", help="run the HTTP server")
    run.add_argument(
        "--config", help="configuration file (default: $QUEUEY_CONFIG or ./queuey.toml)"
    )
    run.add_argument("--host", help="address to listen on")
    run.add_argument("--port", type=int, help="TCP port")
    run.add_argument("--workers", type=int, help="server processes")
    run.add_argument("--access-log", action="store_true", help="log every request")

    start = verbs.add_parser("init", help="write a starter configuration with a fresh key")
    start.add_argument("path", nargs="?", default="queuey.toml")

    from queuey.bench import add_arguments

    add_arguments(verbs.add_parser("bench", help="load-test a Queuey server"))
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verb == "init":
        return init(args.path)
    if args.verb == "serve":
        return serve(args)
    from queuey.bench import run

    status: int = run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
