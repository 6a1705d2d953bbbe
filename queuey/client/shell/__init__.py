"""The shell verbs on the client: ``queuey post``, ``read``, ``consume`` and ``queues``.

They find the server in ``--url``/``--app``/``--key`` (or ``$QUEUEY_URL``,
``$QUEUEY_APP``, ``$QUEUEY_KEY``; ``--token``/``$QUEUEY_TOKEN`` for a bearer
token). An error is one line on standard error and exit status 1; a bad
command line is status 2; Ctrl-C (or SIGTERM) stops cleanly with 130 (143),
giving back what ``consume`` had claimed and not handled.

One module per verb (its parser and its run), ``arguments`` for what their
command lines share, ``terminal`` for signals and output, ``verbs`` for the
table that declares and runs them.
"""

from queuey.client.shell.arguments import DEFAULT_APP, DEFAULT_URL, since
from queuey.client.shell.consume import CommandFailed
from queuey.client.shell.post import MAX_BATCH
from queuey.client.shell.read import as_json
from queuey.client.shell.verbs import VERBS, add_verbs, run, split_command

__all__ = [
    "DEFAULT_APP",
    "DEFAULT_URL",
    "MAX_BATCH",
    "VERBS",
    "CommandFailed",
    "add_verbs",
    "as_json",
    "run",
    "since",
    "split_command",
]
