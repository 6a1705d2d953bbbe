"""``python -m chaos``: the command line, and the owner of every process a run starts.

Whatever happens — a violation, an error of this program, Ctrl-C or SIGTERM —
the ``queuey serve`` process group is stopped and, for ``cassandra-cluster``,
the three nodes are stopped and the single node at 127.0.0.1 is started
again before the command returns. Exit status: 0 no violation, 1
violations (the table and their stories are printed), 2 the run could not be
carried out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from chaos import faults
from chaos.backends import Backend, Cluster, Interference, Sqlite
from chaos.checker import check
from chaos.history import History, dump
from chaos.report import as_json, render_stories, stories, table
from chaos.run import Options, Outcome, groups_for, run
from chaos.servers import ROOT, ServerProcess, free_port, write_config

BACKENDS = ("sqlite", "cassandra-cluster")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Fault injection against real queuey serve processes: producers with "
        "idempotency keys, consumers in every guarantee, SIGKILLs; then a per-message check.",
    )
    p.add_argument("--backend", choices=BACKENDS, default="sqlite")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the faulty part")
    p.add_argument("--seed", type=int, default=1, help="seeds the load and the fault schedule")
    p.add_argument(
        "--kills", type=int, help="server SIGKILLs during the run (default: one per 20 s)"
    )
    p.add_argument("--producers", type=int, default=3)
    p.add_argument("--consumers", type=int, default=4, help="consumers per group")
    p.add_argument("--workers", type=int, default=2, help="workers of queuey serve")
    p.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="run queuey serve from this checkout (default: this repository)",
    )
    p.add_argument("--report", type=Path, help="also write the verdict as JSON here")
    p.add_argument("--history", type=Path, help="write every event here, one JSON per line")
    p.add_argument("--keep", action="store_true", help="keep the data and logs after a pass")
    return p


def options_from(args: argparse.Namespace) -> Options:
    kills = args.kills if args.kills is not None else max(1, round(args.seconds / 20))
    return Options(
        args.backend, args.seconds, args.seed, kills, args.producers, args.consumers, args.workers
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = options_from(args)
    # SIGTERM stops a run as Ctrl-C does: through the same cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    directory = Path(tempfile.mkdtemp(prefix="queuey-chaos-"))
    backend: Backend = Sqlite(directory) if options.backend == "sqlite" else Cluster()
    key = secrets.token_hex(16)
    port = free_port()
    config = write_config(
        directory / "queuey.toml", backend.storage_url, port, key, backend.settle, options.workers
    )
    server = ServerProcess(config, port, args.server_root.resolve())
    steps = faults.schedule(
        backend, options.seconds, options.kills, random.Random(f"{options.seed}-faults")
    )
    title = [
        f"Queuey chaos run: backend {options.backend}, seed {options.seed}, "
        f"{options.seconds:g} s of faults, {options.producers} producers, "
        f"{options.consumers} consumers per group, queuey serve with {options.workers} workers",
        f"storage {backend.storage_url}, lease {backend.lease_seconds} s, "
        f"settle delay {backend.settle:g} s; data and logs in {directory}",
        f"queuey serve from {args.server_root.resolve()}",
        "faults:",
        *(f"  {s.describe()}" for s in steps),
    ]
    print("\n".join(title), flush=True)
    history = History()
    outcome: Outcome | None = None
    try:
        backend.prepare()
        history = History()
        outcome = asyncio.run(run(options, backend, server, key, history, steps))
    except Interference as exc:
        print(f"chaos: the run is void: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"chaos: interrupted; stopping every process it started; logs in {directory}",
            file=sys.stderr,
        )
        return 130
    except Exception:  # noqa: BLE001 - any failure of the run itself is reported the same way
        traceback.print_exc()
        print(f"chaos: the run could not be carried out; logs in {directory}", file=sys.stderr)
        return 2
    finally:
        server.stop()
        backend.close()
        if args.history:  # also after an error: what happened until then
            dump(history, args.history)
    assert outcome is not None

    verdict = check(history, outcome.stored, outcome.states, groups_for(backend))
    told = stories(verdict, history, outcome.stored)
    if outcome.undrained:
        title.append(f"NOT DRAINED in time: groups {outcome.undrained}")
    if outcome.unresolved_posts:
        title.append(f"{outcome.unresolved_posts} post(s) never answered 201 despite retries")
    print()
    print(table(verdict, title))
    if told:
        print("\nThe story of each violation (examples):\n")
        print(render_stories(told))
    if args.report:
        settings = {
            "backend": options.backend,
            "seed": options.seed,
            "seconds": options.seconds,
            "faults": [s.describe() for s in steps],
            "directory": str(directory),
        }
        args.report.write_text(json.dumps(as_json(verdict, told, settings), indent=2) + "\n")
    if verdict.ok and not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        print(f"\ndata and logs kept in {directory}")
    return 0 if verdict.ok else 1
