"""``queuey bench``: a load tester for any Queuey server.

Posting (the default) sends ``--messages`` messages of ``--size`` bytes to one
queue over ``--concurrency`` keep-alive connections, ``--batch`` messages per
request (one message is sent as the raw request body, more as a JSON batch).
With ``--read`` each of ``--concurrency`` readers pages through the queue with
``since``, ``--batch`` messages per page, every partition in turn, as a
consumer would. With ``--group G`` ``--concurrency`` consumers of consumer
group G claim ``--batch`` messages at a time and acknowledge them, until the
group has nothing left (or ``--messages`` were consumed). A one-line progress
bar runs on standard error while a terminal is attached; a summary follows on
standard output: counts, rate, latency percentiles and errors by HTTP status
(or by exception for requests that got no answer). The exit status is 0 when
every request succeeded.

Every request goes through :class:`queuey.client.AsyncClient` (one HTTP code
path with the client people use), with its retries off so that each failure
is counted rather than hidden. Posts carry idempotency keys, as the client's do.
"""

from queuey.bench.load import connect, measured, message_body
from queuey.bench.options import Options, add_arguments
from queuey.bench.progress import Progress
from queuey.bench.results import Results, percentile
from queuey.bench.runner import run

__all__ = [
    "Options",
    "Progress",
    "Results",
    "add_arguments",
    "connect",
    "measured",
    "message_body",
    "percentile",
    "run",
]
