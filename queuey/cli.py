"""The ``queuey`` command: ``serve``, ``init``, ``bench``, and the client's shell verbs
(``post``, ``read``, ``consume``, ``queues``: ``queuey.client.shell``)."""

from __future__ import annotations

import argparse
import errno
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from queuey import __version__
from queuey.config import ConfigError, Settings, load, parse_integer, port_problem, workers_problem

if TYPE_CHECKING:
    from granian.server.mp import MPServer

#: granian's default; the kernel caps it at net.core.somaxconn.
BACKLOG = 1024
#: Requests one worker answers at once. granian's default (backlog / workers, 1024) would
#: refuse connections beyond a thousand held reads and event streams, which cost no thread
#: each (SPEC §7: thousands of open streams); the open-files limit (ulimit -n) still bounds them.
BACKPRESSURE = 65536

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

[auth]
# Signs scoped tokens (POST /v1/APP/QUEUE/tokens); see docs/people.md.
token_secret = "{token_secret}"
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
        handle.write(STARTER.format(db=db, key=key, token_secret=secrets.token_urlsafe(32)))
    print(f"Wrote {path}. Application 'queuey' has the key:")
    print(key)
    return 0


def listen(settings: Settings) -> socket.socket:
    """Bind and listen on the configured address, or raise :class:`ConfigError`.

    The socket is bound without ``SO_REUSEPORT``: another process, another
    Queuey included, cannot bind the port beside it and take half of its
    connections. ``SO_REUSEADDR`` only lets a restart bind while connections of
    the previous run linger in TIME_WAIT (on Linux it never allows two listeners).
    """
    host, port = settings.host, settings.port
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(
            f"{settings.path}: server.host: cannot listen on {host}: {reason}"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # As granian does: accepted connections inherit it, and small answers are not delayed.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{settings.path}: server.port: {shown} is already in use") from None
        key = "server.port" if exc.errno == errno.EACCES else "server.host"
        raise ConfigError(
            f"{settings.path}: {key}: cannot listen on {shown}: {exc.strerror}"
        ) from None
    return sock


def granian_on(sock: socket.socket) -> type[MPServer]:
    """granian's process server, serving on ``sock`` instead of binding its own sockets.

    granian 2.8.9 binds its listeners itself, always with ``SO_REUSEPORT`` and with no
    option to leave it out: a second server started on the same port would bind
    too and silently answer half the requests. Its shared-socket path (the one it
    takes off Linux) hands a socket of the main process to the workers instead;
    this server takes that path with the socket :func:`listen` bound, so the workers
    inherit one listening socket, as in a classic pre-fork server. The hook is
    private to granian, whose version is pinned: check it when upgrading.
    """
    from granian._granian import SocketHolder
    from granian.server.mp import MPServer

    class Server(MPServer):
        def _init_shared_socket(self) -> None:
            sock.set_inheritable(True)
            # granian's stub declares no constructor; on Linux it is (fd, uds, backlog).
            holder = SocketHolder(sock.fileno(), False, self.backlog)  # type: ignore[call-arg]
            self._ssp = None
            self._shd = holder  # type: ignore[assignment]
            self._sfd = sock.fileno()  # type: ignore[assignment]
            self._sso = sock  # closed by granian at shutdown

    return Server


def serve(args: argparse.Namespace) -> int:
    """Run Queuey on granian with the resolved settings."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    overrides = {"host": args.host, "port": args.port, "workers": args.workers}
    try:
        settings = load(args.config, overrides=overrides)
        # Fail here, with one line, rather than inside every worker.
        from queuey.storage import StorageURLError, open_storage

        open_storage(settings.storage_url)
        sock = listen(settings)
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
    # Workers die with this process, also by SIGKILL (queuey/worker.py).
    from queuey.worker import PARENT_ENV

    os.environ[PARENT_ENV] = str(os.getpid())
    # The workers' metrics go to files in a fresh directory, summed at each scrape
    # (queuey/api/metrics.py): set before any worker starts, removed when the server stops.
    metrics_dir = tempfile.mkdtemp(prefix="queuey-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    print(
        f"Queuey {__version__} on http://{settings.host}:{settings.port}"
        f" ({settings.workers} worker(s), storage {settings.storage_url})",
        flush=True,
    )
    try:
        granian_on(sock)(
            "queuey.worker:app",
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            backlog=BACKLOG,
            backpressure=BACKPRESSURE,
            log_access=False,  # Queuey writes its own access log ([server] access_log)
            # A request whose headers stop arriving is dropped by granian (hyper) itself;
            # a stalled body is the app's to answer (408, api/http.py).
            http1_settings=HTTP1Settings(
                header_read_timeout=max(1, int(settings.read_timeout * 1000))
            ),
            # At SIGTERM granian lets each connection finish its request, with no limit of its
            # own: workers still busy after shutdown_seconds are killed (docs/operations.md).
            workers_kill_timeout=settings.shutdown_seconds,
        ).serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


class Parser(argparse.ArgumentParser):
    """A bad command line is one line on standard error and exit status 2, no usage block."""

    def error(self, message: str) -> NoReturn:
        # argparse says "argument --port: PROBLEM"; the flag alone names the culprit.
        if message.startswith("argument -"):
            line = message.removeprefix("argument ")
        else:
            line = f"{self.prog}: {message}"
        self.exit(2, f"{line}\n")


def integer(problem: Callable[[int], str | None]) -> Callable[[str], int]:
    """An argparse type: an integer that ``problem`` finds nothing wrong with."""

    def convert(text: str) -> int:
        value = parse_integer(text)
        if value is None:
            shown = text if len(text) <= 20 else f"{text[:20]}…"
            raise argparse.ArgumentTypeError(f'"{shown}" is not a number')
        complaint = problem(value)
        if complaint:
            raise argparse.ArgumentTypeError(complaint)
        return value

    return convert


def parser() -> argparse.ArgumentParser:
    return parsers()[0]


def parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``queuey`` parser, and the parsers of the client's shell verbs by name."""
    top = Parser(prog="queuey", description="Queuey, an HTTP message queue.")
    top.add_argument("--version", action="version", version=f"queuey {__version__}")
    verbs = top.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("serve", help="run the HTTP server")
    run.add_argument(
        "--config", help="configuration file (default: $QUEUEY_CONFIG or ./queuey.toml)"
    )
    run.add_argument("--host", help="address to listen on")
    run.add_argument("--port", type=integer(port_problem), help="TCP port (1..65535)")
    run.add_argument("--workers", type=integer(workers_problem), help="server processes")
    run.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (the default; see [server] access_log)",
    )

    start = verbs.add_parser("init", help="write a starter configuration with a fresh key")
    start.add_argument("path", nargs="?", default="queuey.toml")

    from queuey.bench import add_arguments

    add_arguments(verbs.add_parser("bench", help="load-test a Queuey server"))

    from queuey.client.shell import add_verbs

    return top, add_verbs(verbs)


def main(argv: list[str] | None = None) -> int:
    from queuey.client.shell import split_command

    argv, command = split_command(sys.argv[1:] if argv is None else argv)
    top, shell_verbs = parsers()
    if argv[:1] and argv[0] in shell_verbs:
        # Options may come between the queue and the body: `queuey post q --ttl 60 hello`.
        args = shell_verbs[argv[0]].parse_intermixed_args(argv[1:])
        args.verb = argv[0]
    else:
        args = top.parse_args(argv)
    args.command = command
    if args.verb == "init":
        return init(args.path)
    if args.verb == "serve":
        return serve(args)
    if args.verb != "bench":
        from queuey.client import shell

        shell_status: int = shell.run(args)
        return shell_status
    from queuey.bench import run

    status: int = run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
