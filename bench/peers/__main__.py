"""``python -m bench.peers``: the peer table alone, without the rest of ``make bench``.

Builds the peers (or only ``--build``s them), measures them beside Queuey with
the bench's settings (``--quick``: one run of 2 s, as ``BENCH_QUICK=1``) in
var/peers/run/, and prints the table; BENCHMARKS.md is left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
from types import FrameType

from bench import wrk
from bench.harness import Harness, Settings
from bench.peers import measure
from bench.peers.build import PEERS


def _stop_on_signal(number: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + number)  # unwinds through the Fleet, which stops the servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run of 2 s per figure")
    parser.add_argument("--build", action="store_true", help="build the peers, measure nothing")
    names = [p.key for p in measure.PEERS]
    parser.add_argument(
        "--only", action="append", choices=names, default=[], help="this peer (repeatable)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    settings = dataclasses.replace(Settings.from_environment(), work=PEERS / "run")
    bench = Harness(settings)
    peers = measure.build(measure.chosen(args.only), bench)
    if args.build:
        print("built:", ", ".join(f"{p.name} {p.version}" for p in peers) or "nothing")
        return 0 if not bench.report.notes else 1
    wrk.ensure_wrk()
    shutil.rmtree(settings.work, ignore_errors=True)
    settings.work.mkdir(parents=True)
    measure.measure(bench, peers)
    print("\n".join(bench.report.peer_table()))
    print("\n".join(f"- {note}" for note in bench.report.notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
