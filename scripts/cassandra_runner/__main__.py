"""``python -m scripts.cassandra_runner``: see :mod:`scripts.cassandra_runner.cli`."""

import sys

from scripts.cassandra_runner.cli import main

sys.exit(main())
