"""``python -m bench.frameworks``: see bench/frameworks/run.py."""

from bench.frameworks.run import main

raise SystemExit(main())
