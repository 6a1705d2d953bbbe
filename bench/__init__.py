"""The `make bench` harness: run it with `python -m bench.run` (see bench/run.py)."""
